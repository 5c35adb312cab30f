"""TRL's side of the GPU benchmark: `GRPOTrainer` and `OnlineDPOTrainer` on the same work, in a process
of their own.

A child process, because accelerate reads the one-rank process group semibench's side made (and
its environment) as a distributed launch, and so that each side's peak memory is its own. The child
writes its result file after each objective, so a run stopped at its deadline keeps what finished.
The config mapping and the step timer are `perf.trl_config` / `perf.trl_steps`, as in `bench trl`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from semibench.gpubench.workload import OBJECTIVES, ModelInfo, load_shape, reward

TRL_VERSION = "1.16.0"  # the `bench` extra's pin


def importable() -> tuple[str | None, str | None]:
    """(TRL's version, None) when its two trainers import here; else (None, why not).

    A GPU machine may hold TRL's wheel without a dependency at the version it needs (datasets, its
    pyarrow): that costs the TRL rows, with the reason in the record, not the rest of a short lease."""
    if importlib.util.find_spec("trl") is None:
        return None, f"not installed here, so not measured (pip install trl=={TRL_VERSION}; docs/scale.md says what to carry to a GPU machine)"
    try:
        import trl
        from trl import GRPOTrainer  # noqa: F401
        from trl.experimental.online_dpo import OnlineDPOTrainer  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (any import-time failure of a third-party stack: recorded, see above)
        return None, f"installed but its trainers do not import ({type(exc).__name__}: {exc}), so not measured"
    return trl.__version__, None


def measure(shape_name: str, model: ModelInfo, prompts: list[str], steps: int, timeout_s: float, env_drop: tuple[str, ...]) -> dict:
    """Both objectives in one child (one interpreter start); {objective: row} for those it finished,
    and "error" with the child's last lines when it failed or ran past `timeout_s`."""
    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({"shape": shape_name, "model": model.as_record(), "prompts": prompts, "steps": steps, "result": str(result)}))
        env = {k: v for k, v in os.environ.items() if k not in env_drop}
        error = None
        try:
            done = subprocess.run([sys.executable, "-m", "semibench.gpubench.trl_side", str(request)], env=env, capture_output=True, text=True,
                                  timeout=max(timeout_s, 1))
            if done.returncode != 0:
                error = f"TRL child exited {done.returncode}: " + done.stderr[-2000:]
        except subprocess.TimeoutExpired:
            error = f"TRL child stopped at the run's deadline ({timeout_s:.0f} s left)"
        rows = json.loads(result.read_text()) if result.exists() else {}
    return rows | ({"error": error} if error else {})


def run_objective(objective: str, shape_name: str, model: ModelInfo, prompts: list[str], steps: int) -> dict:
    """TRL's trainer for warm-up + `steps` steps; medians over the measured ones."""
    import torch

    from semibench import perf
    from semibench.gpubench.trainer import bench_config
    from semibench.models import load_tokenizer

    shape = load_shape(shape_name)
    cfg = bench_config(shape, model, objective, activation_checkpointing=False)
    tokens: list[int] = []  # generated tokens of each reward call: one call per step

    def reward_fn(prompts, completions, completion_ids, **kw):
        tokens.append(sum(len(ids) for ids in completion_ids))
        return [reward(ids) for ids in completion_ids]

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        args = perf.trl_config(objective, cfg, shape.warmup_steps + steps, out, "cuda" if on_gpu else "cpu", min_new_tokens=shape.completion_tokens)
        per_step = perf.trl_steps(objective, model.path, load_tokenizer(model.path), [{"prompt": p} for p in prompts], reward_fn, args)
    measured = per_step[shape.warmup_steps :]
    step_s = statistics.median(s["step_s"] for s in measured)
    generate_s = statistics.median(s["generate_s"] for s in measured)
    return {"side": "trl", "objective": objective, "steps": len(measured), "step_s": step_s, "generate_s": generate_s, "other_s": step_s - generate_s,
            "samples_per_step": cfg.train.prompts_per_step * cfg.sampling.samples_per_prompt, "generated_tokens_per_step": sorted(set(tokens)),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None}


def main(request_path: str) -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()  # the parent's log is the run's; TRL's own lines stay on stdout
    request = json.loads(Path(request_path).read_text())
    model = ModelInfo(**request["model"])
    rows: dict = {}
    for objective in OBJECTIVES:
        rows[objective] = run_objective(objective, request["shape"], model, request["prompts"], request["steps"])
        tmp = Path(request["result"] + ".tmp")
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, request["result"])  # whole or absent, never torn
        print(f"trl {objective}: {rows[objective]['step_s']:.2f} s/step", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
