"""The grid's verdicts: planned pairs, training seeds pooled into one arm, one family per benchmark, written and printed."""

import json
import logging
import shutil

import numpy as np
import pytest
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
    assert "Welch" in online_vs_offline["method"] and online_vs_offline["verdict"] == "A better (1 training seed)"  # offline: 1 seed
    assert online_vs_offline["ci_lower"] > 0 and online_vs_offline["n_items"] == 60
    online_vs_seed = next(r for r in rows if r["a"] == "Online DPO (s=1)" and r["b"] == "Seed (tiny)")
    assert online_vs_seed["verdict"] == "A better"  # 2 training seeds against the untrained model: nothing to qualify
    assert online_vs_seed["seeds_for_target_mde"] is None  # planning is for regime comparisons: the seed model's items do not shrink
    assert all(r["positive_control"] is True for r in rows if r["b"] != "Seed (tiny)")  # online DPO's control resolved
    offline_vs_seed = next(r for r in rows if r["a"] == "Offline DPO (s=∞)")
    assert offline_vs_seed["verdict"] in ("not resolved", "A better (1 training seed)")
    # One family: the 5 planned comparisons on math_heldout, adjusted together with Holm (statsmodels).
    from statsmodels.stats.multitest import multipletests

    assert {r["family_size"] for r in rows} == {5} and {r["adjustment"] for r in rows} == {"holm"}
    assert [r["p_adjusted"] for r in rows] == list(multipletests([r["p_value"] for r in rows], method="holm")[1])

    result = CliRunner().invoke(app, ["verdicts", str(root)])
    assert result.exit_code == 0, result.output
    table, figure_line = result.output.rstrip("\n").rsplit("\n", 1)
    assert (root / "tables" / "verdicts.md").read_text() == table.rstrip("\n") + "\n"
    assert figure_line.startswith(f"figure: {root / 'tables' / 'verdicts.png'}") and (root / "tables" / "verdicts.png").stat().st_size > 0
    assert "| math | math_heldout | Online DPO (s=1) | Offline DPO (s=∞) | 2/1 | Welch seeds |" in result.output  # offline: 1 seed, not paired
    assert "p (Holm)" in result.output and "math/math_heldout: 5 tests" in result.output
    assert "- math/math_heldout: **shown** (" in result.output
    assert (root / "tables" / "verdicts.csv").read_text().startswith("task,benchmark,a,b,delta,ci_lower,ci_upper,p_value,p_adjusted,family_size")


def test_a_verdict_significant_alone_is_not_resolved_in_its_family(tmp_path):
    """Exact McNemar p = 2 / 2^6 = 0.031 for A alone solving 6 of 160: resolved as one test, not after Holm over 3."""
    root = tmp_path / "runs"
    base = np.zeros(160)
    base[:5] = 1
    write_binary(make_seed(root, "tiny", []) / "eval", base)
    lifted = base.copy()
    lifted[10:16] = 1
    for sync in ("inf", "1"):
        write_binary(make_run(root, "math", "dpo", sync) / "eval" / "step_000004", lifted if sync == "1" else base)
    rows = verdict_rows(root)
    online_vs_seed = next(r for r in rows if r["a"] == "Online DPO (s=1)" and r["b"] == "Seed (tiny)")
    assert online_vs_seed["p_value"] == 2 / 2 ** 6 and online_vs_seed["family_size"] == 3
    assert online_vs_seed["p_adjusted"] == 3 * 2 / 2 ** 6 and online_vs_seed["verdict"] == "not resolved"
    # No control resolved: the family's regime verdict compares arms training did not measurably move, and says so.
    from semibench.reports.verdicts import to_markdown

    regime = next(r for r in rows if r["b"] == "Offline DPO (s=∞)")
    assert regime["positive_control"] is False and online_vs_seed["positive_control"] is None
    assert "- math/math_heldout: **not shown**: no arm beats the seed model" in to_markdown(rows)


def write_binary(eval_dir, solved, bench="math_heldout", scores=None):
    eval_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"key": f"k{i}", "question": f"q{i}", "gold": "1", "scores": scores[i] if scores else [float(x)]} for i, x in enumerate(solved)]
    (eval_dir / f"{bench}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_seeds_of_one_arm_with_different_samples_per_item(tmp_path):
    """Seed 0 drew 1 sample per item, seed 1 drew 4: each seed contributes its item means (this crashed with
    numpy's "inhomogeneous shape")."""
    root = tmp_path / "runs"
    write_binary(make_seed(root, "tiny", []) / "eval", np.zeros(30))
    run0 = make_run(root, "math", "dpo", "1", **{"train.seed": 0})
    run1 = make_run(root, "math", "dpo", "1", **{"train.seed": 1})
    write_binary(run0 / "eval" / "step_000004", np.ones(30))
    write_binary(run1 / "eval" / "step_000004", np.ones(30), scores=[[1.0, 1.0, 0.0, 1.0]] * 30)
    [row] = verdict_rows(root)
    assert row["seeds_a"] == 2 and row["delta"] == 100 * (1 + 0.75) / 2


def test_an_item_no_judge_could_score_is_dropped_from_both_sides(tmp_path):
    root = tmp_path / "runs"
    write_binary(make_seed(root, "tiny", []) / "eval", np.zeros(20), bench="arena_hard--local-tiny")
    scores = [[1.0]] * 19 + [[None]]
    write_binary(make_run(root, "math", "dpo", "1") / "eval" / "step_000004", np.ones(20), bench="arena_hard--local-tiny", scores=scores)
    [row] = verdict_rows(root)
    assert row["n_items"] == 19 and row["items_dropped"] == 1 and row["delta"] == 100.0


def test_different_items_across_the_sides_are_not_compared(tmp_path):
    root = tmp_path / "runs"
    write_samples(make_seed(root, "tiny", []) / "eval", np.full(40, 0.2), n_items=40)
    run = make_run(root, "math", "dpo", "1")
    write_samples(run / "eval" / "step_000004", np.full(50, 0.2), n_items=50)
    [row] = verdict_rows(root)
    assert row["verdict"] == "not compared" and "different items" in row["method"]


def test_replication_counts_same_unresolved_and_flipped_verdicts():
    from semibench.reports.verdicts import replication

    row = lambda a, delta, v: {"task": "mixed", "benchmark": "math_heldout", "a": a, "b": "Seed", "delta": delta, "verdict": v}  # noqa: E731
    first = [row("offline", 8.0, "A better"), row("online", 2.0, "A better"), row("grpo", -5.0, "B better"), row("semi", 1.0, "not resolved")]
    second = [row("offline", 6.0, "A better"), row("online", 0.5, "not resolved"), row("grpo", 4.0, "A better"), row("semi", 3.0, "A better")]
    r = replication(first, second)
    assert (r["matched"], r["resolved_first"], r["same"], r["unresolved_second"], r["flipped"], r["resolved_second_only"]) == (4, 3, 1, 1, 1, 1)
    assert r["sign_disagreements"] == 1 and [x["outcome"] for x in r["rows"]] == ["same", "unresolved_second", "flipped", "resolved_second_only"]
    from semibench.reports.verdicts import replication_csv

    lines = replication_csv(r).splitlines()
    assert lines[0].split(",")[:6] == ["task", "benchmark", "a", "b", "delta_first", "delta_second"] and len(lines) == 5
    assert lines[3] == "mixed,math_heldout,grpo,Seed,-5.0000,4.0000,B better,A better,flipped,False"


def test_grpo_is_compared_with_online_group_dpo_as_with_online_dpo(tmp_path):
    """A grid run with `--objectives group_dpo,grpo` keeps the regime comparison GRPO vs online (Group)DPO."""
    root = tmp_path / "runs"
    base = np.zeros(40)
    base[:8] = 1
    write_binary(make_seed(root, "tiny", []) / "eval", base)
    for objective, sync in (("group_dpo", "inf"), ("group_dpo", "1"), ("grpo", "1")):
        write_binary(make_run(root, "math", objective, sync) / "eval" / "step_000004", base)
    pairs = {(r["a"], r["b"]) for r in verdict_rows(root) if r["b"] != "Seed (tiny)"}
    assert pairs == {("Online GroupDPO (s=1)", "Offline GroupDPO (s=∞)"), ("GRPO (n=8)", "Online GroupDPO (s=1)")}


def test_arms_that_trained_the_same_seeds_are_paired_by_seed(tmp_path, caplog):
    """Seed k lifts both arms alike (it fixes their prompts and samples): A beats B by ~10 points at every seed
    while the seeds themselves sit 15-30 points apart. Paired over seeds (scipy ttest_rel on the per-seed scores,
    aligned by seed id) resolves it; Welch, which ignores the blocks, cannot. Sides with other seeds stay Welch."""
    from scipy import stats

    from semibench.reports.results import read_runs
    from semibench.reports.verdicts import arms, compare_arms, to_markdown
    from semibench.stats import compare_scores

    root = tmp_path / "runs"
    n_items, base, lift = 60, {0: 10, 1: 25, 2: 40}, {0: 6, 1: 7, 2: 5}
    for seed in (2, 0, 1):  # created out of order
        for sync, extra in (("1", lift[seed]), ("inf", 0)):
            solved = np.zeros(n_items)
            solved[: base[seed] + extra] = 1
            write_binary(make_run(root, "math", "dpo", sync, **{"train.seed": seed}) / "eval" / "step_000004", solved)
    [row] = verdict_rows(root)
    per_seed_a = np.array([base[s] + lift[s] for s in (0, 1, 2)]) / n_items
    per_seed_b = np.array([base[s] for s in (0, 1, 2)]) / n_items
    paired = stats.ttest_rel(per_seed_a, per_seed_b)
    assert row["method"].startswith("paired t-test over training seeds") and row["p_value"] == pytest.approx(paired.pvalue)
    assert row["ci_lower"] == pytest.approx(100 * paired.confidence_interval().low) and row["verdict"] == "A better"
    welch = compare_scores(per_seed_a[:, None, None], per_seed_b[:, None, None])  # the same scores, blocks ignored
    assert "Welch" in welch["method"] and welch["p_value"] > 0.3
    assert "| 3/3 | paired seeds |" in to_markdown([row])
    # The planning column: the seeds an arm this comparison needs for an MDE of 4 (statsmodels' power solved for n).
    import math

    from statsmodels.stats.power import TTestPower

    sd = 100 * float(np.std(per_seed_a - per_seed_b, ddof=1))
    needed = lambda target: max(2, math.ceil(TTestPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8)))  # noqa: E731
    assert row["target_mde"] == 4.0 and row["seeds_for_target_mde"] == needed(4.0) and needed(1.0) > needed(4.0)
    result = CliRunner().invoke(app, ["verdicts", str(root), "--target-mde", "1"])
    assert result.exit_code == 0 and f"| {needed(1.0)} | A better |" in result.output and "Seeds for MDE ≤ 1 points" in result.output

    online, offline = arms(read_runs(root))
    assert online.seeds == offline.seeds == [0, 1, 2]  # seeds created 2, 0, 1 stack by seed id
    shuffled = type(online)(**{**vars(online), "eval_dirs": dict(reversed(online.eval_dirs.items()))})
    assert compare_arms(shuffled, offline, "math_heldout")["p_value"] == pytest.approx(paired.pvalue)  # aligned by seed id, not order
    unfinished = offline.only([0, 1])  # seed 2 of the offline arm not run yet: pair on the seeds both ran
    row = compare_arms(online, unfinished, "math_heldout")
    assert row["seeds_unpaired"] == 1 and "1 run(s) of a seed the other arm did not run left out" in row["method"]
    assert row["p_value"] == pytest.approx(stats.ttest_rel(per_seed_a[:2], per_seed_b[:2]).pvalue)
    other_seeds = type(offline)(**{**vars(offline), "eval_dirs": dict(zip((0, 5, 6), offline.dirs()))})  # one seed in common: nothing to pair over
    assert "Welch" in compare_arms(online, other_seeds, "math_heldout")["method"]

    copy = root / "copied-run"  # the same config and training seed twice: counted once, the run named by its id kept
    shutil.copytree(online.eval_dirs[0].parent.parent, copy)
    with caplog.at_level(logging.WARNING):
        online_again, _ = arms(read_runs(root))
    assert online_again.eval_dirs == online.eval_dirs and f"{copy} repeats {online.eval_dirs[0].parent.parent}" in caplog.text
    shutil.rmtree(copy)

    relogged = make_run(root, "math", "dpo", "inf", **{"train.seed": 3, "log.group": "a tracker group"})  # `log` changes no numerics:
    write_binary(relogged / "eval" / "step_000004", np.zeros(n_items))  # the same arm, not an arm of its own
    assert [a.seeds for a in arms(read_runs(root))] == [[0, 1, 2], [0, 1, 2, 3]]


def test_the_same_lift_at_every_seed_is_no_variance_not_a_resolved_verdict(tmp_path):
    """+6 of 60 items at each of 3 seeds: the per-seed differences are equal on paper and differ by ~1e-17 in
    floating point; that rounding must not become p ~ 1e-32 (the paired test has no variance to test)."""
    root = tmp_path / "runs"
    for seed, base in ((0, 10), (1, 25), (2, 41)):
        for sync, extra in (("1", 6), ("inf", 0)):
            solved = np.zeros(60)
            solved[: base + extra] = 1
            write_binary(make_run(root, "math", "dpo", sync, **{"train.seed": seed}) / "eval" / "step_000004", solved)
    [row] = verdict_rows(root)
    assert row["delta"] == pytest.approx(10.0) and row["ci_lower"] == row["ci_upper"] == pytest.approx(10.0)
    assert row["p_value"] != row["p_value"] and row["verdict"] == "not resolved" and "no variance, no test" in row["method"]
