"""Benchmarks that print numbers (never timed tests). Each returns rows; the CLI prints the tables.

- `step`: where one online step spends its time (sync / generate / reward / train), DPO and GRPO.
- `pipeline`: wall time of the same run at s = 1, 4, 8, 16 (vLLM, pipelined windows), ratio to s = 1.
- `trl`: samples/s of online DPO and GRPO against TRL 1.16's OnlineDPOTrainer / GRPOTrainer on the
  same model, prompts, lengths, samples and batch, both sides on HF generation (semibench also on
  vLLM), measured in alternating blocks in one process. TRL is a bench-only dependency.
- `sync`: seconds per generator weight sync against a plain in-memory copy of the same state dict.
- `placement`: the trainer's step time alone, next to an idle engine process, with vLLM's engine
  in its own process, and while that engine generates: why the engine lives in a process of its own.

Medians exclude each block's first step (it pays warm-up). The machine is shared: every table
prints the load average before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from semibench import config
from semibench.train import train

PHASES = ("time/sync", "time/generate", "time/reward", "time/train")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def step_breakdown(preset: str, task: str, steps: int, overrides: dict) -> list[dict]:
    """One online run per objective; each row holds the medians over its steps (step 0 excluded
    when there are more, because it pays one-time costs such as kernel warm-up)."""
    rows = []
    for objective in ("dpo", "grpo"):
        cfg = config.resolve(preset, {"task.name": task, "loss.objective": objective, "train.sync_every": "1", "train.steps": steps, **overrides})
        with tempfile.TemporaryDirectory() as out:
            run = train(cfg, Path(out))
            metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        measured = metrics[1:] if len(metrics) > 1 else metrics
        row = {"objective": objective, "steps": len(measured)}
        for key in PHASES + ("tokens_per_s", "generated_tokens", "reward"):
            row[key] = statistics.median(m[key] for m in measured)
        row["total_s"] = sum(row[p] for p in PHASES)
        row |= train_efficiency(cfg, measured)
        rows.append(row)
    return rows


def train_efficiency(cfg: config.RunConfig, metrics: list[dict]) -> dict:
    """The train phase's achieved GFLOP/s and its share of this machine's matmul ceiling in the dtype it
    computed in, measured now: "% of peak" then compares an AVX2 box with an AMX one, seconds do not.

    FLOPs per trained token: 6 N for the policy's forward and backward plus 2 N for the reference's
    forward (N: the checkpoint's parameters, a tied embedding counted once, as the LM head's matmul);
    attention's T^2 term is left out (under 3% at these lengths), as are padded positions.
    """
    from semibench.hardware import matmul_ceiling_gflops, resolve_autocast
    from semibench.models import resolve_model

    params = checkpoint_params(resolve_model(cfg.model.name))
    flops = statistics.median(8 * params * m["train_tokens"] for m in metrics if m.get("train_tokens"))
    seconds = statistics.median(m["time/train"] for m in metrics if m.get("train_tokens"))
    dtype = resolve_autocast(cfg.model.autocast_dtype) or cfg.model.dtype
    ceiling = matmul_ceiling_gflops(dtype)
    achieved = flops / seconds / 1e9
    return {"train_gflops": achieved, "ceiling_gflops": ceiling, "pct_of_ceiling": 100 * achieved / ceiling, "compute_dtype": dtype}


def checkpoint_params(path: str) -> int:
    """Parameters stored in a safetensors checkpoint (a tied LM head is stored once)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():
                numel = 1
                for d in f.get_slice(name).get_shape():
                    numel *= d
                total += numel
    return total
