"""A small runs tree written by hand: what train + eval would leave, with numbers the tests can check."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from semibench import config
from semibench.runs import RunDir, atomic_write_json, mark_done

EVAL_DATE = "2026-11-25"


def eval_json(bench: str, score: float, stderr: float | None = None, judge: str | None = None, ci: tuple | None = None, samples: int = 1,
              se_items: float | None = None, ci_items: tuple | None = None) -> dict:
    """An eval result; `se_items` / `ci_items` (newer results) are present only when given."""
    items = ({"se_items": se_items} if se_items is not None else {}) | ({"ci_items": list(ci_items)} if ci_items is not None else {})
    return items | {
        "benchmark": bench, "score": score, "stderr": stderr, "ci_lower": ci[0] if ci else None, "ci_upper": ci[1] if ci else None,
        "metrics": {}, "n": 100, "samples_per_prompt": samples, "sampling": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 256},
        "judge": judge, "checkpoint": "x", "engine": "hf", "limit": 100,
        "versions": {"semibench": "0.1.0", "git_commit": "abc1234"}, "seconds": 1.0, "date": EVAL_DATE,
    }


def make_run(root: Path, task: str, objective: str, sync_every: str, steps: int = 4, evals: dict | None = None,
             extra_metrics: Callable[[int], dict] | None = None, **overrides) -> Path:
    """A finished run: config.json, `steps` metric rows whose values are simple functions of the step, eval JSON per step;
    `extra_metrics(step)` adds to or overrides a row's keys."""
    cfg = config.resolve("tiny", {"task.name": task, "loss.objective": objective, "train.sync_every": sync_every, "train.steps": steps, **overrides})
    run = RunDir(root, cfg)
    run.start_fresh(cfg)
    s = cfg.train.sync_every
    for step in range(steps):
        version = 0 if s is None else step // s * s
        row = {"step": step, "reward": 0.1 * step, "logit_entropy": 1.0 - 0.1 * step, "rollout_length": 10.0 + step,
               "kl": 0.01 * step, "mismatch_kl": 0.001 * (step - version), "staleness": step - version, "generator_version": version,
               "frac_valid_prompts": 0.5, "skipped": int(step == 1), "time/sync": 0.1, "time/generate": 2.0, "time/reward": 0.5, "time/train": 3.0}
        if objective != "grpo":
            row |= {"chosen_length": 9.0 + step, "rejected_length": 12.0 + step, "chosen_logp": -5.0 - step, "rejected_logp": -7.0 - step}
        run.append_metrics(row | (extra_metrics(step) if extra_metrics else {}))
    for step, results in (evals or {}).items():
        for result in results:
            stem = result["benchmark"] + (f"--{result['judge'].replace(':', '-')}" if result["judge"] else "")
            atomic_write_json(run.path / "eval" / f"step_{step:06d}" / f"{stem}.json", result)
    mark_done(run.path)
    return run.path


def make_seed(root: Path, model: str, results: list[dict]) -> Path:
    path = root / f"seed-{model}"
    atomic_write_json(path / "seed.json", {"model": model})
    for result in results:
        atomic_write_json(path / "eval" / f"{result['benchmark']}.json", result)
    return path


def fixture_tree(root: Path) -> dict[str, Path]:
    """Seed row + offline / semi-online / online DPO and online GRPO on mixed, with evals at steps 2 and 4."""
    judge = "local:tiny"
    seed = make_seed(root, "tiny", [eval_json("math_heldout", 20.0, 4.0), eval_json("alpaca_eval", 10.0, 1.0, judge)])
    runs = {"seed": seed}
    for name, objective, s, final in (("offline", "dpo", "inf", 22.0), ("semi", "dpo", "2", 30.0), ("online", "dpo", "1", 34.5), ("grpo", "grpo", "1", 31.25)):
        runs[name] = make_run(root, "mixed", objective, s, evals={
            2: [eval_json("math_heldout", final - 5)],
            4: [eval_json("math_heldout", final, 4.5), eval_json("alpaca_eval", final / 2, 1.5, judge),
                eval_json("arena_hard", final / 3, None, judge, ci=(final / 3 - 2, final / 3 + 1.5))],
        })
    return runs
