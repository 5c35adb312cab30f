"""Where each benchmark's data comes from, and its items.

Resolution order: --data-dir (or SEMIBENCH_DATA_DIR), then the data shipped in the project's own
`tasks/data/` (IFEval, MATH-500, GSM8K test, AMC23, Arena-Hard v0.1 and v2.0; see its README), then the
Hugging Face hub or its cache. A directory counts for a benchmark only when it holds every file the
benchmark needs. Nothing here looks outside the project and the directory the user names.

The hub gets one quiet attempt: with HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set only its local cache
is read (no request is made); otherwise one request, without huggingface_hub's retries and warnings.
A benchmark found nowhere raises `DataMissing` with one line saying how to supply it; the other
benchmarks still run. AlpacaEval is not shipped (CC BY-NC): --data-dir or the hub.

The paper's held-out sets (numina_test, numina_valid, wildchat_valid) are splits of the training
datasets (`paper_data`): a run that trained on its own copy (`task.math_data=numina:<file.jsonl>`)
is evaluated on that copy's held-out split, the one its training split is disjoint from; otherwise
--data-dir's `numina/train.jsonl` / `wildchat/train.jsonl` (the hub datasets' train split, their
columns), then the hub by name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from semibench.benchmarks import BENCHMARKS
from semibench.config import ConfigError, RunConfig
from semibench.datafiles import TASKS_DIR
from semibench.runs import RunDir

SHIPPED_DATA_DIR = TASKS_DIR / "data"  # benchmark files committed with the project (tasks/data/README.md)
ALPACA_FILE = "alpaca_eval/reference_outputs_gpt4_1106_preview.json"
ALPACA_DF_GAMED = "alpaca_eval/df_gamed.csv"
ALPACA_HUB = "tatsu-lab/alpaca_eval"  # dataset repo: alpaca_eval_gpt4_baseline.json, df_gamed.csv
ARENA_DIR = "arena-hard-v0.1"
ARENA_BASELINE = "gpt-4-0314"
ARENA_V2_DIR = "arena-hard-v2.0"  # its baselines, one per category: scoring.arena_hard_v2.BASELINES
NUMINA_SPLIT = {"numina_test": "test", "numina_valid": "valid"}  # benchmark -> paper_data split
PAPER_FILES = {"numina": "numina/train.jsonl", "wildchat": "wildchat/train.jsonl"}  # under --data-dir


class DataMissing(Exception):
    """A benchmark's data is nowhere we may look; the message is the one line that says how to supply it."""


@dataclass(frozen=True)
class Source:
    where: str  # "local" | "hub" | "procedural"
    path: Path | None  # the data dir (local) or the downloaded file (hub)
    description: str  # recorded in the result JSON
    dataset: str | None = None  # the paper's datasets: what paper_data opens (a .jsonl path or a hub id)


@dataclass(frozen=True)
class Origin:
    """The training an evaluated checkpoint is measured against: its own run's config, or, for a grid's
    seed row, the grid's (its seed.json). The held-out sets and wildchat_valid's reward model follow it."""

    config: RunConfig
    path: Path
    is_run: bool  # a run checkpoint (config.json), not a grid's seed row


def checkpoint_origin(checkpoint: Path) -> Origin | None:
    """The run config of runs/<id>/checkpoints/step_N; None for any other checkpoint (its benchmarks take
    their sources from the settings, or from an origin the caller names: `evaluate(origin=...)`, `--origin`)."""
    run = RunDir.of_checkpoint(checkpoint)
    return Origin(run.read_config(), run.config_path, True) if run is not None else None


def read_origin(path: Path) -> Origin:
    """An origin named by the user: a run's config.json (or its directory) or a grid seed row's seed.json."""
    path = Path(path)
    if path.is_dir():
        path = path / ("config.json" if (path / "config.json").is_file() else "seed.json")
    if not path.is_file():
        raise ConfigError(f"no origin at {path}; pass a run's config.json or a grid seed row's seed.json")
    if path.name == "config.json":
        return Origin(RunDir.at(path.parent).read_config(), path, True)
    return seed_origin(json.loads(path.read_text()), path)


def seed_origin(seed: dict, path: Path) -> Origin:
    """The origin of a grid's seed row from its seed.json record (`grid.seed_record`)."""
    from semibench import config

    sections = {"task": seed["task"], "train": {"seed": seed["seed"]}, "reward": seed.get("reward", {}),
                "model": {"chat_template": seed.get("chat_template", "")}}
    return Origin(config.from_dict(sections), path, False)


def data_dirs(data_dir: Path | None) -> list[Path]:
    """Where to look, in order: the user's --data-dir, then the project's shipped tasks/data."""
    dirs = [Path(data_dir)] if data_dir is not None else []
    return dirs + ([SHIPPED_DATA_DIR] if SHIPPED_DATA_DIR.is_dir() and SHIPPED_DATA_DIR not in dirs else [])


def _local(data_dir: Path | None, files: tuple[str, ...]) -> Path | None:
    return next((d for d in data_dirs(data_dir) if all((d / f).is_file() for f in files)), None)


def _hint(data_dir: Path | None, files: tuple[str, ...]) -> str:
    where = f"{data_dir}/" if data_dir is not None else "--data-dir DIR with "
    return f"{where}{', '.join(files)}"


def resolve(bench: str, data_dir: Path | None, origin: Origin | None = None) -> Source:
    """Find `bench`'s data or raise DataMissing (math_heldout and if_heldout need none)."""
    if bench in (*NUMINA_SPLIT, "wildchat_valid"):
        return _paper_source(bench, data_dir, origin)
    if bench == "math_heldout":
        return Source("procedural", None, "reasoning-gym, held out from the training pool")
    if bench == "if_heldout":
        return Source("procedural", None, "constrained requests, held out from the training pool")
    spec = BENCHMARKS[bench]
    if spec.lmeval is not None:  # lm-eval reads the directory through our tasks/eval YAML
        local = _local(data_dir, spec.local_files)
        if local is not None:
            return Source("local", local, f"{local}/{spec.local_files[0]} via tasks/eval/{spec.lmeval.yaml}")
        path, name, split = spec.hub
        _hub_dataset(bench, path, name, split, _hint(data_dir, spec.local_files))
        return Source("hub", None, f"hub {path}{'/' + name if name else ''}:{split} via lm-eval task {spec.lmeval.installed}")
    if spec.local_files and spec.hub is not None:  # one file we read ourselves (AMC23)
        local = _local(data_dir, spec.local_files)
        if local is not None:
            return Source("local", local / spec.local_files[0], str(local / spec.local_files[0]))
        path, name, split = spec.hub
        _hub_dataset(bench, path, name, split, _hint(data_dir, spec.local_files))
        return Source("hub", None, f"hub {path}:{split}")
    if bench == "alpaca_eval":
        local = _local(data_dir, (ALPACA_FILE,))
        if local is not None:
            return Source("local", local / ALPACA_FILE, str(local / ALPACA_FILE))
        path = _hub_file(ALPACA_HUB, "alpaca_eval_gpt4_baseline.json")
        if path is None:
            raise DataMissing(f"alpaca_eval: no data; pass {_hint(data_dir, (ALPACA_FILE,))} (tatsu-lab/alpaca_eval results/gpt4_1106_preview/model_outputs.json)")
        return Source("hub", path, f"hub {ALPACA_HUB}/alpaca_eval_gpt4_baseline.json")
    if bench == "arena_hard":
        files = (f"{ARENA_DIR}/question.jsonl", f"{ARENA_DIR}/model_answer/{ARENA_BASELINE}.jsonl")
        local = _local(data_dir, files)
        if local is None:
            raise DataMissing(f"arena_hard: no data; pass {_hint(data_dir, files)} (from github.com/lmarena/arena-hard-auto data/)")
        return Source("local", local / ARENA_DIR, str(local / ARENA_DIR))
    if bench == "arena_hard_v2":
        from semibench.evals.scoring.arena_hard_v2 import BASELINES

        files = (f"{ARENA_V2_DIR}/question.jsonl", *(f"{ARENA_V2_DIR}/model_answer/{b}.jsonl" for b in BASELINES.values()))
        local = _local(data_dir, files)
        if local is None:
            raise DataMissing(f"arena_hard_v2: no data; pass {_hint(data_dir, files)} (from github.com/lmarena/arena-hard-auto data/)")
        return Source("local", local / ARENA_V2_DIR, str(local / ARENA_V2_DIR))
    raise ConfigError(f"unknown benchmark '{bench}'")


def _paper_source(bench: str, data_dir: Path | None, origin: Origin | None) -> Source:
    from semibench import paper_data

    name, field = ("numina", "math_data") if bench in NUMINA_SPLIT else ("wildchat", "if_data")
    hub_id, file = paper_data.NAMED_SOURCES[name], PAPER_FILES[name]
    split = NUMINA_SPLIT.get(bench, "valid")
    # Splits depend on the filter and the split seed: a change of either must not reuse old results.
    how = f"{split} split, paper_data v{paper_data.FILTER_VERSION}, split seed {paper_data.SPLIT_SEED}"
    trained_on = paper_data.named_source(getattr(origin.config.task, field), name) if origin is not None else None
    if trained_on is not None and trained_on != hub_id:
        path = Path(trained_on)
        if path.suffix == ".jsonl" or path.exists():
            if not path.is_file():
                raise DataMissing(f"{bench}: task.{field} of {origin.path} names {path}, which is gone; restore it")
            return Source("local", path, f"{path} (task.{field} of {origin.path}), {how}", str(path))
        _hub_dataset(bench, trained_on, None, "train", f"the dataset {trained_on} that task.{field} of {origin.path} names")
        return Source("hub", None, f"hub {trained_on} (task.{field} of {origin.path}), {how}", trained_on)
    local = _local(data_dir, (file,))
    if local is not None:
        return Source("local", local / file, f"{local / file}, {how}", str(local / file))
    _hub_dataset(bench, hub_id, None, "train", f"{_hint(data_dir, (file,))} ({hub_id}'s train split, its columns)")
    return Source("hub", None, f"hub {hub_id}, {how}", hub_id)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE, read now (a process may set them after importing the libraries),
    or huggingface_hub's own offline mode (also set by TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants as hub_constants

    variables = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE") for v in variables) or bool(hub_constants.HF_HUB_OFFLINE)


@contextlib.contextmanager
def _one_quiet_hub_attempt(offline: bool) -> Iterator[None]:
    """huggingface_hub and datasets without their warnings and, online, without retries; offline, cache only.

    Unreachable, huggingface_hub retries every request 5 times with backoff (about 23 s) and logs each try;
    the caller's DataMissing line says all that is needed. Offline, both libraries are put in offline mode
    for the call even when the variables were set after they were imported, so no request is attempted.
    """
    import datasets
    from huggingface_hub import constants as hub_constants
    from huggingface_hub.utils import _http as hub_http

    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "datasets", "fsspec")]
    levels = [lg.level for lg in loggers]
    backoff = getattr(hub_http, "_http_backoff_base", None)  # http_backoff's retry loop (huggingface_hub 2.x)
    offline_flags = (hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        if offline:
            hub_constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
        elif backoff is not None:
            hub_http._http_backoff_base = lambda *args, **kwargs: backoff(*args, **{**kwargs, "max_retries": 0})
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = offline_flags
        if backoff is not None:
            hub_http._http_backoff_base = backoff


def _hub_dataset(bench: str, path: str, name: str | None, split: str, hint: str) -> None:
    import datasets

    offline = hub_offline()
    try:
        with _one_quiet_hub_attempt(offline):
            datasets.load_dataset(path, name, split=split)  # cached afterwards, so lm-eval's own load is free
    except Exception as exc:  # offline, not cached, gated, renamed: each raises its own type
        why = "is not cached and the hub is offline (HF_HUB_OFFLINE)" if offline else f"is not reachable or cached: {type(exc).__name__}"
        raise DataMissing(f"{bench}: no data; pass {hint} (the hub dataset {path} {why})") from None


def _hub_file(repo: str, filename: str) -> Path | None:
    """A file of a hub dataset repo: offline, the hub cache only (no request); else one quiet download attempt."""
    import huggingface_hub

    if hub_offline():
        cached = huggingface_hub.try_to_load_from_cache(repo, filename, repo_type="dataset")
        return Path(cached) if isinstance(cached, str) else None
    try:
        with _one_quiet_hub_attempt(False):
            return Path(huggingface_hub.hf_hub_download(repo, filename, repo_type="dataset"))
    except Exception:  # unreachable or absent: the caller says what to supply
        return None


def alpaca_df_gamed(data_dir: Path | None) -> Path | None:
    """alpaca-eval's df_gamed.csv (needed for the length-controlled win rate): local, else the hub cache, else None."""
    local = _local(data_dir, (ALPACA_DF_GAMED,))
    return local / ALPACA_DF_GAMED if local is not None else _hub_file(ALPACA_HUB, "df_gamed.csv")


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line_no, line in enumerate(Path(path).read_text().split("\n"), 1):  # not splitlines: answers hold U+2028
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataMissing(f"{path}:{line_no} is not valid JSON; replace the file with an intact copy") from None
    return rows


def alpaca_items(source: Source) -> list[dict]:
    rows = json.loads(Path(source.path).read_text())
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"instruction", "output"} <= set(r) for r in rows):
        raise DataMissing(f"{source.path}: expected a JSON list of {{instruction, output, generator}}; pass AlpacaEval's reference outputs")
    return rows


def arena_items(source: Source, baselines: dict[str, str] | None = None) -> list[dict]:
    """[{uid, category, question, baseline, baseline_model}] in question.jsonl order. `baselines`: category -> baseline
    model (v2.0); None: every question against gpt-4-0314 (v0.1)."""
    answers = {}
    for model in sorted(set((baselines or {}).values())) or [ARENA_BASELINE]:
        for row in read_jsonl(source.path / "model_answer" / f"{model}.jsonl"):
            content = row["messages"][-1]["content"]
            answers[model, row["uid"]] = content["answer"] if isinstance(content, dict) else content
    items = []
    for row in read_jsonl(source.path / "question.jsonl"):
        question = row.get("prompt") or row["turns"][0]["content"]  # v0.1 files use "prompt"; older ones "turns"
        model = baselines[row["category"]] if baselines else ARENA_BASELINE
        if (model, row["uid"]) not in answers:
            raise DataMissing(f"{source.path.name}: no {model} answer for question {row['uid']}; pass the complete data")
        items.append({"uid": row["uid"], "category": row.get("category"), "question": question, "baseline": answers[model, row["uid"]],
                      "baseline_model": model})
    return items
