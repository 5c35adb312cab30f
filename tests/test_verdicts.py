"""The grid's verdicts: planned pairs, training seeds pooled into one arm, written and printed."""

import json

import numpy as np
from typer.testing import CliRunner

from semibench.cli import app
from semibench.reports.verdicts import verdict_rows
from tests.report_fixtures import make_run, make_seed


def write_samples(eval_dir, p_correct, n_items=60, n_samples=4, seed=0, bench="math_heldout"):
    rng = np.random.default_rng(seed)
    eval_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"key": f"k{i}", "question": f"q{i}", "gold": "1", "scores": (rng.random(n_samples) < p_correct[i]).astype(float).tolist()}
            for i in range(n_items)]
    (eval_dir / f"{bench}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_verdicts_pair_the_grid_and_pool_training_seeds(tmp_path):
    root = tmp_path / "runs"
    difficulty = np.random.default_rng(9).uniform(0.05, 0.4, 60)
    write_samples(make_seed(root, "tiny", []) / "eval", difficulty, seed=1)
    for sync, lift, seeds in (("inf", 0.0, (0,)), ("1", 0.3, (0, 1))):
        for s in seeds:
            run = make_run(root, "math", "dpo", sync, **{"train.seed": s})
            write_samples(run / "eval" / "step_000004", np.clip(difficulty + lift, 0, 1), seed=10 + s)
    grpo = make_run(root, "math", "grpo", "1")
    write_samples(grpo / "eval" / "step_000004", np.clip(difficulty + 0.3, 0, 1), seed=20)

    rows = verdict_rows(root)
    pairs = {(r["a"], r["b"]) for r in rows}
    assert pairs == {
        ("Offline DPO (s=∞)", "Seed (tiny)"), ("Online DPO (s=1)", "Seed (tiny)"), ("GRPO (n=8)", "Seed (tiny)"),
        ("Online DPO (s=1)", "Offline DPO (s=∞)"), ("GRPO (n=8)", "Online DPO (s=1)"),
    }
    online_vs_offline = next(r for r in rows if r["a"] == "Online DPO (s=1)" and r["b"] == "Offline DPO (s=∞)")
    assert (online_vs_offline["seeds_a"], online_vs_offline["seeds_b"]) == (2, 1)  # seeds 0 and 1 are one arm
    assert "two-level" in online_vs_offline["note"] and online_vs_offline["verdict"] == "A better"
    assert online_vs_offline["ci_lower"] > 0 and online_vs_offline["n_items"] == 60
    offline_vs_seed = next(r for r in rows if r["a"] == "Offline DPO (s=∞)")
    assert offline_vs_seed["note"] == "1 training seed: seed-to-seed variance not measured"

    result = CliRunner().invoke(app, ["verdicts", str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "tables" / "verdicts.md").read_text() == result.output.rstrip("\n") + "\n"
    assert "| math | math_heldout | Online DPO (s=1) | Offline DPO (s=∞) |" in result.output
    assert (root / "tables" / "verdicts.csv").read_text().startswith("task,benchmark,a,b,delta,ci_lower,ci_upper")


def test_different_items_across_the_sides_are_not_compared(tmp_path):
    root = tmp_path / "runs"
    write_samples(make_seed(root, "tiny", []) / "eval", np.full(40, 0.2), n_items=40)
    run = make_run(root, "math", "dpo", "1")
    write_samples(run / "eval" / "step_000004", np.full(50, 0.2), n_items=50)
    [row] = verdict_rows(root)
    assert row["verdict"] == "not compared" and "different items" in row["note"]
