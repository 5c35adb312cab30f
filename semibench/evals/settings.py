"""How a checkpoint is evaluated: `EvalSettings`, the one schema behind `semibench eval`'s options,
`grid --eval-set key=value` and the settings recorded in every result.

Each field carries its CLI flag and help in its metadata: the CLI builds its options from them
(`cli.common.settings_options`), `settings_to_cli` writes them back, and string values coerce by the
field's type. A new setting is one field here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from semibench.benchmarks import JUDGED
from semibench.config import DTYPES, ConfigError
from semibench.hardware import AUTO
from semibench.runs import RunDir

ENGINES = ("auto", "hf", "vllm")


def setting(default, flag: str, help: str, **cli):
    """A field of EvalSettings: its default, its `semibench eval` flag and help (extra typer option arguments in `cli`)."""
    return field(default=default, metadata={"flag": flag, "help": help, "cli": cli})


@dataclass(frozen=True)
class EvalSettings:
    samples_per_prompt: int = setting(1, "--samples", "samples per prompt (avg@N; paper: 50)")
    temperature: float = setting(0.0, "--temperature", "0 = greedy (paper: 0.6)")
    top_p: float = setting(1.0, "--top-p", "(paper: 0.9)")
    # for every benchmark; lm-eval's 256 default truncates RL checkpoints
    max_new_tokens: int = setting(1024, "--max-new-tokens", "per completion, every benchmark")
    limit: int | None = setting(None, "--limit", "first N prompts of each benchmark")
    judge: str | None = setting(None, "--judge", "openai:<model> | local:<path|smollm2> | rm:<path> (alpaca_eval, arena_hard)")
    data_dir: Path | None = setting(None, "--data-dir", "local benchmark data (default: the shipped tasks/data, then the HF hub)",
                                    envvar="SEMIBENCH_DATA_DIR")
    engine: str = setting("auto", "--engine", "auto | hf | vllm")
    seed: int = setting(0, "--seed", "sampling seed")
    # vLLM schedules its own batches, so it gets long calls
    batch_size: int | None = setting(None, "--batch-size", "sequences per generate call (default: 32 on HF, 512 on vLLM)")
    dtype: str = setting(AUTO, "--dtype", "generation dtype: auto (bfloat16 where the hardware computes in it, else float32), float32, bfloat16")
    judge_max_new_tokens: int = setting(4096, "--judge-max-new-tokens", "Arena-Hard judgment length (upstream: 4096)")
    heldout_size: int = setting(100, "--heldout-size", "math_heldout problems (and if_heldout requests, unless --if-heldout-size)")
    # Its own size because the two differ in what limits them: a pass/fail IF item near 50% carries the most
    # binomial noise, so IF needs more items than math to put the same floor under a test against the seed model.
    if_heldout_size: int | None = setting(None, "--if-heldout-size", "if_heldout requests (default: --heldout-size)")
    heldout_sources: tuple[str, ...] = setting(("two_digit_sums",), "--heldout-sources", "math_heldout sources of a non-run checkpoint (default: the smol preset's)")
    heldout_template: str = setting("short", "--heldout-template", "math_heldout prompt template of a non-run checkpoint (default: the smol preset's)")
    reward_model: str | None = setting(None, "--reward-model", "wildchat_valid's scorer (default: the run's reward.reward_model)")
    rm_cls_token: str = setting("", "--rm-cls-token", "with --reward-model: Athene-style CLS token")
    chat_template: str = setting("", "--chat-template", "prompt with this tasks/templates.yaml chat template (e.g. llama3) instead of the checkpoint's own")

    @property
    def if_heldout_items(self) -> int:
        return self.heldout_size if self.if_heldout_size is None else self.if_heldout_size

    def __post_init__(self) -> None:
        # Values may arrive as strings (`semibench grid --eval-set limit=50`, seed.json): coerce them by the field's type.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (str, list)):
                object.__setattr__(self, f.name, _coerce(f.name, value, _TYPES[f.name]))


def _coerce(name: str, value, kind):
    base, nullable = _unwrap_optional(kind)
    if isinstance(value, list):
        return tuple(value)
    if nullable and value.strip().lower() in ("none", "null", ""):  # "none" / "" from the CLI mean unset
        return None
    if base is str:
        return value
    if typing.get_origin(base) is tuple:
        return tuple(x for x in value.split(",") if x)
    if base is Path:
        return Path(value)
    try:
        return base(value)
    except ValueError:
        raise ConfigError(f"eval setting {name} expects a number, got {value!r}") from None


def _unwrap_optional(kind) -> tuple[type, bool]:
    """(T, True) for `T | None`, (T, False) for T."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


_TYPES = typing.get_type_hints(EvalSettings)


def check_settings(s: EvalSettings) -> None:
    checks = [
        (s.samples_per_prompt >= 1, "samples per prompt must be >= 1"),
        (s.temperature >= 0, "temperature must be >= 0 (0 = greedy)"),
        (0 < s.top_p <= 1, "top_p must be in (0, 1]"),
        (s.temperature > 0 or s.samples_per_prompt == 1, "greedy decoding (temperature 0) gives one sample per prompt; pass --samples 1 or a temperature > 0"),
        (s.max_new_tokens >= 1 and s.judge_max_new_tokens >= 1, "max new tokens must be >= 1"),
        (s.limit is None or s.limit >= 1, "limit must be >= 1"),
        (s.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}"),
        (s.dtype in (AUTO, *DTYPES), f"dtype must be auto or one of {', '.join(DTYPES)}"),
        ((s.batch_size or 1) >= 1 and s.heldout_size >= 1 and (s.if_heldout_size is None or s.if_heldout_size >= 1), "batch size and held-out sizes must be >= 1"),
        (s.data_dir is None or Path(s.data_dir).is_dir(), f"data dir {s.data_dir} does not exist"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if s.chat_template:
        from semibench.datafiles import read_spec

        if s.chat_template not in read_spec("templates")["chat"]:
            raise ConfigError(f"unknown chat template '{s.chat_template}'; choose from {', '.join(read_spec('templates')['chat'])} (or none for the checkpoint's own)")
    if s.judge is not None:
        from semibench.evals.judges import parse_spec

        parse_spec(s.judge)


def settings_to_cli(s: EvalSettings) -> list[str]:
    """`semibench eval` flags that reproduce `s` (defaults omitted)."""
    default = EvalSettings()
    out = []
    for f in dataclasses.fields(EvalSettings):
        value = getattr(s, f.name)
        if value != getattr(default, f.name):
            out += [f.metadata["flag"], ",".join(value) if isinstance(value, tuple) else str(value)]
    return out


def eval_dir(checkpoint: Path) -> Path:
    """runs/<id>/eval/step_N for runs/<id>/checkpoints/step_N; X/eval for any other checkpoint dir X."""
    run = RunDir.of_checkpoint(checkpoint)
    return run.evals / Path(checkpoint).name if run is not None else Path(checkpoint) / "eval"


def result_stem(bench: str, judge: str | None) -> str:
    """A result's file stem: a judged benchmark's carries the judge, so two judges never share a file."""
    if bench not in JUDGED:
        return bench
    from semibench.evals.judges import judge_slug

    return f"{bench}--{judge_slug(judge)}"
