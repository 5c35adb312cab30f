"""Experiment files: a YAML file read into the same overrides `--set` gives, and a config written back as one.

    preset: smol                 # the preset the file starts from
    optim.lr: 1.0e-05            # any `--set` key, dotted ...
    train: {steps: 20, seed: 1}  # ... or nested under its section
    grid:                        # `semibench grid` only: its axes and launcher, one key per flag
      tasks: [mixed]
    eval:                        # `semibench grid` and `semibench eval`: evaluation settings and benchmarks
      limit: 50

Precedence, weakest first: the preset, the paper's Table 4 row, the file, `--set` and the other flags.
The file's values go through the same typed schema as `--set` (`config.apply_overrides`); this module adds
what a file can get wrong that a flag cannot: YAML syntax, a section nested in the wrong place, a value of
the wrong YAML type (`steps: 3.5` is not silently 3), a key set twice, a key of the other command. Each is
one `ConfigError` naming the file, the line and the key; the file is read whole before anything runs.

PyYAML plus the dataclass schema, no config framework: Hydra/OmegaConf would bring a second schema, its
own override grammar and an output directory convention to reconcile with `--set` and run ids, for what is
here a flat map of dotted keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from semibench import config
from semibench.benchmarks import BENCHMARKS
from semibench.config import ConfigError, RunConfig

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"  # package data: found in a clone and in a pip install alike
LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class GridAxes:
    """The `grid:` section: `semibench grid`'s axes and launcher, one field per flag. Unset: the flag's
    default (tasks, objectives, launcher), else the preset's grid default (s values, seeds)."""

    tasks: tuple[str, ...] | None = None
    objectives: tuple[str, ...] | None = None
    sync_every: tuple[int | None, ...] | None = None  # the s values of every objective; unset: the paper's grid per objective
    seeds: tuple[int, ...] | None = None
    launcher: str | None = None
    slurm_partition: str | None = None
    slurm_nodes: int | None = None
    slurm_gpus_per_node: int | None = None
    slurm_time: int | None = None  # minutes per job
    slurm_cluster: str | None = None


@dataclass(frozen=True)
class ExperimentFile:
    """A checked file: `run` holds dotted config keys, `grid` GridAxes fields, `eval` the eval schema's fields
    and `benchmarks`; every value already of its field's type."""

    path: Path
    preset: str | None
    run: dict[str, Any]
    grid: dict[str, Any]
    eval: dict[str, Any]


COMMANDS = ("train", "grid", "eval")


def find(name: str | Path) -> Path:
    """A file path, or the name of a shipped recipe (`paper-math` for semibench/recipes/paper-math.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"--config {name}: no such file; pass a YAML file or a shipped recipe ({', '.join(recipe_names())})")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load(path: str | Path, command: str, eval_schema: type) -> ExperimentFile:
    """Read and check `path` for `command` (train, grid or eval). `eval_schema` is the evaluation settings
    dataclass (evals.settings.EvalSettings, passed in: this contract module imports no stage).

    train takes the preset and config keys; grid everything; eval reads the `eval:` section of any of these
    files (a study's other sections describe its training) and needs one."""
    path = find(path)
    schemas = {"run": config.key_types(), "grid": _field_types(GridAxes, "grid."),
               "eval": _field_types(eval_schema, "eval.") | {"eval.benchmarks": tuple[str, ...]}}
    sections: dict[str, dict[str, Any]] = {"run": {}, "grid": {}, "eval": {}}
    preset = None
    for key, value, line in _entries(path):
        where = f"{path}:{line}"
        if key == "preset":
            preset = _preset(where, value)
            continue
        section = next((s for s, keys in schemas.items() if key in keys), None)
        if section is None:
            raise _unknown(where, key, [k for keys in schemas.values() for k in keys])
        if command == "train" and section != "run":
            raise ConfigError(f"{where}: {key} is a `semibench {'grid' if section == 'grid' else 'grid` or `semibench eval'}` key; "
                              f"`semibench train` runs one config (run the file with `semibench grid --config {path}`, or drop its {section}: section)")
        value = _typed(where, key, value, schemas[section][key])
        _check_choice(where, key, value)
        sections[section][key if section == "run" else key.split(".", 1)[1]] = value
    if command == "eval" and not sections["eval"]:
        raise ConfigError(f"{path}: no eval: section; `semibench eval --config` reads the evaluation settings there "
                          f"(e.g. eval: {{limit: 50, benchmarks: [math_heldout]}})")
    return ExperimentFile(path, preset, sections["run"], sections["grid"], sections["eval"])


def dump(cfg: RunConfig, header: list[str], comments: dict[str, str] | None = None) -> str:
    """`cfg` as a file `load` reads back to the same config: every key, dotted, one line each, in schema order;
    `header` lines and a trailing comment per key in `comments` (e.g. what `auto` is on this machine)."""
    comments = comments or {}
    values = {"preset": cfg.preset} | config.flatten(cfg)
    lines = [f"# {line}" if line else "#" for line in header]
    for key, value in values.items():
        text = yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True, width=10**6)
        text = text.removesuffix("\n").removesuffix("\n...")  # a scalar document's end marker
        lines.append(f"{key}: {text}" + (f"  # {comments[key]}" if key in comments else ""))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading


def _entries(path: Path) -> list[tuple[str, Any, int]]:
    """(dotted key, value, line) for every leaf of the file; nested mappings are sections."""
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}); fix the file at that line") from None
    finally:
        loader.dispose()
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: a config file is a mapping of keys to values (key: value lines), not a {_yaml_kind(root)}")
    seen: dict[str, int] = {}
    out: list[tuple[str, Any, int]] = []

    def walk(node: yaml.MappingNode, prefix: str) -> None:
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                raise ConfigError(f"{path}:{line}: key {key!r} is not a name; keys are config keys such as optim.lr")
            dotted = prefix + key
            if isinstance(value_node, yaml.MappingNode) and dotted not in _LEAVES:
                walk(value_node, dotted + ".")
                continue
            if dotted in seen:
                raise ConfigError(f"{path}:{line}: {dotted} is set twice (also on line {seen[dotted]}); keep one")
            seen[dotted] = line
            out.append((dotted, loader.construct_object(value_node, deep=True), line))

    walk(root, "")
    return out


def _yaml_kind(node: yaml.Node) -> str:
    return "list" if isinstance(node, yaml.SequenceNode) else "single value"


def _field_types(cls: type, prefix: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {prefix + f.name: hints[f.name] for f in dataclasses.fields(cls)}


_LEAVES = set(config.key_types())  # a mapping under one of these is a wrong value, not a section


def _preset(where: str, value: Any) -> str:
    from semibench.presets import PRESETS

    if value not in PRESETS:
        raise ConfigError(f"{where}: preset {value!r} is not one of {', '.join(PRESETS)}")
    return value


# What the field's other tools call a key (TRL, torchtune, verl): pointed at semibench's name.
FOREIGN_NAMES = {"learning_rate": "optim.lr", "max_grad_norm": "optim.grad_clip", "max_steps": "train.steps", "beta": "loss.dpo_beta",
                 "num_generations": "sampling.samples_per_prompt", "max_completion_length": "sampling.max_new_tokens",
                 "model_name_or_path": "model.name", "per_device_train_batch_size": "train.prompts_per_step"}


def _unknown(where: str, key: str, valid: list[str]) -> ConfigError:
    """The closest valid key: one with the same last name (`steps` -> train.steps, `learning_rate` -> optim.lr), or
    nearly (`grid.task` -> grid.tasks), else the nearest by spelling."""
    tail = key.rsplit(".", 1)[-1]
    by_name: dict[str, list[str]] = {name: [k] for name, k in FOREIGN_NAMES.items()}
    for k in valid:
        by_name.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    near = [tail] if tail in by_name else difflib.get_close_matches(tail, by_name, n=1, cutoff=0.8)
    close = by_name[near[0]] if near else difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `semibench presets show` lists the config keys, docs/config-files.md the grid: and eval: ones"
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


def _typed(where: str, key: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type, refusing what YAML typed otherwise (a float for an int, a list for a number)."""
    kind, nullable = _unwrap_optional(hint)
    if key.endswith("sync_every") and typing.get_origin(kind) is not tuple:
        return _sync_every(where, key, value)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: {key} needs a value ({_describe(kind)}), got nothing")
    if typing.get_origin(kind) is tuple:
        items = [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else value if isinstance(value, list) else [value]
        args = typing.get_args(kind)
        if Ellipsis not in args and len(items) != len(args):
            raise ConfigError(f"{where}: {key} expects {len(args)} values, got {value!r}")
        item_type = args[0] if Ellipsis in args else None
        if key.endswith("sync_every"):
            return tuple(_sync_every(where, key, x) for x in items)
        return tuple(_typed(where, key, x, item_type or args[i]) for i, x in enumerate(items))
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str) or type(value) is int,
          Path: isinstance(value, str)}.get(kind, True)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not ok:
        raise ConfigError(f"{where}: {key} expects {_describe(kind)}, got {value!r}")
    return kind(value) if kind in (float, str, Path) else value


def _sync_every(where: str, key: str, value: Any) -> int | None:
    if isinstance(value, (bool, list, dict)) or (isinstance(value, float) and value != float("inf")):
        raise ConfigError(f"{where}: {key} expects a positive integer or inf, got {value!r}")
    try:
        return config.parse_sync_every(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), type(None) in typing.get_args(hint)
    return hint, False


def _describe(kind: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(kind, str(kind))


def _check_choice(where: str, key: str, value: Any) -> None:
    """The grid's named axes, checked here so the error names the file (a run key's domain is config.validate's)."""
    choices = {"grid.tasks": config.TASKS, "grid.objectives": config.OBJECTIVES, "grid.launcher": LAUNCHERS, "eval.benchmarks": tuple(BENCHMARKS)}
    if key not in choices or value is None:
        return
    for item in value if isinstance(value, tuple) else (value,):
        if item not in choices[key]:
            close = difflib.get_close_matches(str(item), choices[key], n=1)
            raise ConfigError(f"{where}: {key} has {item!r}{f'; did you mean {close[0]}?' if close else ''} (choose from {', '.join(choices[key])})")
