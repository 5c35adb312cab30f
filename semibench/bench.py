"""Benchmarks that print numbers (never timed tests).

`step`: where one online training step spends its time, for DPO and GRPO on the same preset:
seconds in sync / generate / reward / train and generated tokens per second, medians over steps.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from semibench import config
from semibench.train import train

PHASES = ("time/sync", "time/generate", "time/reward", "time/train")


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
        rows.append(row)
    return rows
