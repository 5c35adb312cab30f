"""leaderboard, tables and plot on a hand-written runs tree: exact text, fixture numbers, byte-identical re-runs."""

import csv

import pytest

from semibench.reports.leaderboard import write_leaderboards
from semibench.reports.plots import write_plots
from semibench.reports.results import read_runs
from semibench.reports.tables import write_tables
from tests.report_fixtures import eval_json, fixture_tree, make_run


@pytest.fixture()
def tree(tmp_path):
    runs = tmp_path / "runs"
    return runs, fixture_tree(runs)


def _header_and_rows(text):
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


def test_leaderboard_exact_csv_and_byte_identical(tree, tmp_path):
    root, runs = tree
    out = tmp_path / "lb"
    [path] = write_leaderboards(root, out).values()
    text = path.read_text()
    header, rows = _header_and_rows(text)
    assert header[:15] == ["run_id", "base_model", "preset", "task", "objective", "sync_every", "regime", "ref_sync", "steps",
                           "num_updates", "skipped_steps", "seed", "checkpoint_step", "selected_by", "if_reward"]
    score_columns = [h for h in header if h.startswith(("math_heldout", "alpaca_eval", "arena_hard"))]
    suffixes = ("", "_se_items", "_sd_seeds", "_stderr", "_ci_lower", "_ci_upper")
    assert score_columns == [key + s for key in ("math_heldout", "alpaca_eval@local:tiny", "arena_hard@local:tiny") for s in suffixes]
    col = {h: i for i, h in enumerate(header)}
    # Sorted: the seed row (empty task) first, then DPO offline, semi-online, online, then GRPO.
    assert [r[col["regime"]] for r in rows] == ["seed", "offline", "semi-online", "online", "online"]
    assert [r[col["objective"]] for r in rows] == ["", "dpo", "dpo", "dpo", "grpo"]
    assert [r[col["run_id"]] for r in rows[1:]] == [runs[k].name for k in ("offline", "semi", "online", "grpo")]
    assert [r[col["math_heldout"]] for r in rows] == ["20.00", "22.00", "30.00", "34.50", "31.25"]
    assert [r[col["math_heldout_stderr"]] for r in rows] == ["4.00", "4.50", "4.50", "4.50", "4.50"]
    assert {r[col["math_heldout_se_items"]] for r in rows} == {""}  # the fixture's results predate se_items
    online = rows[3]
    assert online[col["arena_hard@local:tiny"]] == "11.50" and online[col["arena_hard@local:tiny_ci_lower"]] == "9.50"
    assert online[col["arena_hard@local:tiny_ci_upper"]] == "13.00" and online[col["arena_hard@local:tiny_stderr"]] == ""
    assert online[col["sync_every"]] == "1" and rows[1][col["sync_every"]] == "inf"
    assert [r[col["if_reward"]] for r in rows] == ["", "judge", "judge", "judge", "judge"]  # what rewarded the mixed task's IF prompts
    # Step 1 of every fixture run had no valid pair or group: 4 steps, 3 updates; the seed row none.
    assert [(r[col["num_updates"]], r[col["skipped_steps"]]) for r in rows] == [("0", "0")] + [("3", "1")] * 4
    assert online[col["judges"]] == "local:tiny" and online[col["git_commit"]] == "abc1234" and online[col["date"]] == "2026-11-25"
    assert online[col["eval_temperature"]] == "0" and online[col["eval_limit"]] == "100"
    assert "`tiny.csv` | 5" in (out / "README.md").read_text()
    # Re-run: byte-identical.
    write_leaderboards(root, out)
    assert path.read_text() == text


def test_leaderboard_skips_runs_without_final_eval(tree, tmp_path):
    root, runs = tree
    make_run(root, "math", "dpo", "1", steps=4, evals={2: []})
    [path] = write_leaderboards(root, tmp_path / "lb").values()
    assert len(path.read_text().splitlines()) == 1 + 5


def test_different_judges_never_share_a_column(tree, tmp_path):
    root, runs = tree
    from semibench.runs import atomic_write_json
    from tests.report_fixtures import eval_json

    atomic_write_json(runs["online"] / "eval" / "step_000004" / "alpaca_eval--openai-gpt-4o.json", eval_json("alpaca_eval", 55.0, 2.0, "openai:gpt-4o"))
    [path] = write_leaderboards(root, tmp_path / "lb").values()
    header, rows = _header_and_rows(path.read_text())
    assert "alpaca_eval@openai:gpt-4o" in header and "alpaca_eval@local:tiny" in header
    col = {h: i for i, h in enumerate(header)}
    online = next(r for r in rows if r[col["run_id"]] == runs["online"].name)
    assert (online[col["alpaca_eval@openai:gpt-4o"]], online[col["alpaca_eval@local:tiny"]]) == ("55.00", "17.25")
    assert online[col["judges"]] == "local:tiny;openai:gpt-4o"


def test_tables_hold_fixture_numbers(tree, tmp_path):
    root, runs = tree
    written = write_tables(root, tmp_path / "tables")
    assert set(written) == {"table3"}  # only mixed runs: no math-only, IF-only or GRPO-on-math table
    header, rows = _header_and_rows((tmp_path / "tables" / "table3.csv").read_text())
    col = {h: i for i, h in enumerate(header)}
    assert [r[0] for r in rows] == ["Seed (tiny)", "Offline DPO (s=∞) on mixed", "Semi-online DPO (s=2) on mixed", "Online DPO (s=1) on mixed", "GRPO (n=8) on mixed"]
    assert [r[col["Held-out math"]] for r in rows] == ["20.0000", "22.0000", "30.0000", "34.5000", "31.2500"]
    assert rows[3][col["ArenaHard v0.1 [local:tiny] ci_lower"]] == "9.5000"
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert "| Online DPO (s=1) on mixed | 3/4 | 34.5 (4.5) | 17.2 (1.5) | 11.5 (-2.0, +1.5) |" in md
    assert "Updates: optimizer updates taken / steps" in md


def test_plots_write_pngs_and_csv_of_plotted_values(tree, tmp_path):
    root, runs = tree
    drawn = write_plots(root, tmp_path / "fig")
    assert set(drawn) == {"dynamics_mixed", "time_mixed", "staleness_mixed", "cost_mixed"}  # no math-only runs: no paper figure applies
    assert sorted(drawn["dynamics_mixed"]) == sorted(runs[k].name for k in ("offline", "semi", "online", "grpo"))
    for name in drawn:
        png = (tmp_path / "fig" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    header, rows = _header_and_rows((tmp_path / "fig" / "dynamics_mixed.csv").read_text())
    online = runs["online"].name
    reward = [(int(r[4]), float(r[5])) for r in rows if r[1] == "reward" and r[2] == online]
    assert reward == [(0, 0.0), (1, 0.1), (2, 0.2), (3, pytest.approx(0.3))]
    valid = [(int(r[4]), float(r[5])) for r in rows if r[1] == "valid/reward" and r[2] == online]
    assert valid == [(0, 20.0), (2, 29.5), (4, 34.5)]  # the seed model's score is step 0
    staleness = [float(r[5]) for r in rows if r[1] == "staleness" and r[2] == runs["semi"].name]
    assert staleness == [0, 1, 0, 1]
    _, times = _header_and_rows((tmp_path / "fig" / "time_mixed.csv").read_text())
    assert {r[1]: float(r[5]) for r in times if r[2] == online} == pytest.approx({"time/sync": 0.1, "time/generate": 2.0, "time/reward": 0.5, "time/train": 3.0})
    assert {r[0] for r in rows} == {"dynamics_mixed"} and {r[0] for r in times} == {"time_mixed"}


def test_paper_figure_drawn_only_when_its_runs_exist(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "math", "dpo", "1", **{"train.ref_sync": "true"})
    make_run(root, "math", "dpo", "1", **{"train.ref_sync": "false"})
    drawn = write_plots(root, tmp_path / "fig")
    assert "fig2_ref_sync" in drawn and "fig9b_pair_lengths" in drawn and len(drawn["fig2_ref_sync"]) == 2
    assert "fig8_group_dpo" not in drawn and "fig10_nll" not in drawn  # no GroupDPO run, no NLL run
    assert "ref sync" in (tmp_path / "fig" / "fig2_ref_sync.csv").read_text()
    assert len(read_runs(root)) == 2


def test_cli_reports_on_fixture_tree_and_clear_errors(tree, tmp_path):
    from typer.testing import CliRunner

    from semibench.cli import app

    root, _ = tree
    runner = CliRunner()
    result = runner.invoke(app, ["leaderboard", str(root), "--out", str(tmp_path / "lb")])
    assert result.exit_code == 0 and (tmp_path / "lb" / "tiny.csv").exists()
    result = runner.invoke(app, ["tables", str(root)])
    assert result.exit_code == 0 and "Online DPO (s=1) on mixed" in result.output
    result = runner.invoke(app, ["plot", str(root)])
    assert result.exit_code == 0 and (root / "figures" / "figures.md").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("leaderboard", "tables"):
        result = runner.invoke(app, [command, str(empty)])
        assert result.exit_code == 2 and ("no evaluated" in result.output or "evaluated final checkpoint" in result.output)
    result = runner.invoke(app, ["plot", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no runs directory" in result.output


def test_leaderboard_keeps_digits_of_per_token_rewards(tree, tmp_path):
    root, runs = tree
    from semibench.runs import atomic_write_json
    from tests.report_fixtures import eval_json

    atomic_write_json(runs["online"] / "eval" / "step_000004" / "wildchat_valid.json", eval_json("wildchat_valid", 0.00123456, 0.0000421))
    [path] = write_leaderboards(root, tmp_path / "lb").values()
    header, rows = _header_and_rows(path.read_text())
    col = {h: i for i, h in enumerate(header)}
    online = next(r for r in rows if r[col["run_id"]] == runs["online"].name)
    assert (online[col["wildchat_valid"]], online[col["wildchat_valid_stderr"]]) == ("0.001235", "0.000042")


def test_leaderboard_sorts_seeds_numerically(tmp_path):
    from tests.report_fixtures import eval_json

    root = tmp_path / "runs"
    for seed in (10, 2):
        make_run(root, "math", "dpo", "1", evals={4: [eval_json("math_heldout", 10.0, 1.0)]}, **{"train.seed": seed})
    [path] = write_leaderboards(root, tmp_path / "lb").values()
    _, rows = _header_and_rows(path.read_text())
    header, _ = _header_and_rows(path.read_text())
    assert [r[header.index("seed")] for r in rows] == ["2", "10"]


def test_a_malformed_eval_json_is_one_line_naming_the_file(tree, tmp_path):
    from semibench.config import ConfigError

    root, runs = tree
    bad = runs["online"] / "eval" / "step_000004" / "gsm8k.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="gsm8k.json is not valid JSON"):
        write_leaderboards(root, tmp_path / "lb")


def test_tables_show_the_standard_error_over_items_and_say_so(tree, tmp_path):
    """(x) is se_items when a result has it (the evaluator's stderr otherwise), and the note says which."""
    root, runs = tree
    from semibench.runs import atomic_write_json
    from tests.report_fixtures import eval_json

    result = {**eval_json("math_heldout", 40.0, 0.3, samples=4), "se_items": 4.9, "ci_items": [30.2, 49.8], "sd_seeds": 0.6}
    atomic_write_json(runs["online"] / "eval" / "step_000004" / "math_heldout.json", result)
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert "| 40.0 (4.9) |" in md and "| 40.0 (0.3) |" not in md
    assert "standard error over items" in md and "sd_seeds" in md
    header, rows = _header_and_rows((tmp_path / "tables" / "table3.csv").read_text())
    online = next(r for r in rows if r[1] == runs["online"].name)
    col = {h: i for i, h in enumerate(header)}
    assert (online[col["Held-out math se_items"]], online[col["Held-out math sd_seeds"]]) == ("4.9000", "0.6000")


def _seeded_arm(root, seeds_scores):
    """Online DPO on mixed under several training seeds, each with its own final held-out math score, and a seed row."""
    from tests.report_fixtures import eval_json, make_seed

    make_seed(root, "tiny", [eval_json("math_heldout", 20.0, 4.0)])
    for seed, (score, frac) in enumerate(seeds_scores):
        make_run(root, "mixed", "dpo", "1", evals={4: [eval_json("math_heldout", score, 3.0)]}, extra_metrics=lambda step, f=frac: {"frac_valid_prompts": f},
                 **{"train.seed": seed})


def test_table3_prints_each_arm_once_as_mean_and_sd_over_its_seeds(tmp_path):
    """Three training seeds of one arm: one markdown row, mean (SD, n seeds); the CSV keeps a row per seed."""
    root = tmp_path / "runs"
    _seeded_arm(root, [(30.0, 0.5), (33.0, 0.5), (36.0, 0.5)])
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert md.count("Online DPO (s=1) on mixed") == 1
    assert "| Online DPO (s=1) on mixed | 3/4 | 33.0 (SD 3.0, 3 seeds) |" in md  # the SD of 30, 33, 36 is 3
    assert "standard deviation over those seeds" in md
    _, rows = _header_and_rows((tmp_path / "tables" / "table3.csv").read_text())
    assert [r[0] for r in rows].count("Online DPO (s=1) on mixed") == 3


def test_tables_say_what_rewarded_the_if_prompts(tmp_path):
    """A verifiable IF reward is not the paper's reward model: a table with IF-trained runs names which one trained them."""
    root = tmp_path / "runs"
    _seeded_arm(root, [(30.0, 0.5)])  # the tiny preset's mixed runs: the judge
    make_run(root, "mixed", "grpo", "1", evals={4: [eval_json("math_heldout", 31.0, 3.0)]},
             **{"task.if_data": "constraints", "reward.if_reward": "constraints"})
    make_run(root, "math", "dpo", "1", evals={4: [eval_json("math_heldout", 25.0, 3.0)]})
    write_tables(root, tmp_path / "tables")
    table3 = (tmp_path / "tables" / "table3.md").read_text()
    assert "IF prompts rewarded by `constraints`: verifiable" in table3 and "not the paper's" in table3
    assert "; by `judge`: an LLM judge" in table3
    assert "IF prompts rewarded" not in (tmp_path / "tables" / "table1.md").read_text()  # math-only runs: nothing to say


def test_signal_table_gives_frac_valid_and_trained_minus_seed_per_arm(tmp_path):
    from semibench.reports.signal import arm_signal, write_signal

    root = tmp_path / "runs"
    _seeded_arm(root, [(30.0, 0.2), (34.0, 0.6)])
    benches, rows = arm_signal(read_runs(root))
    assert benches == ["math_heldout"] and len(rows) == 1
    assert rows[0]["seeds"] == 2 and rows[0]["frac_valid_prompts"] == pytest.approx(0.4)
    assert rows[0]["math_heldout"] == pytest.approx([10.0, 14.0])  # each seed's final score minus the seed model's 20
    md = write_signal(root, tmp_path / "tables").read_text()
    assert "| Online DPO (s=1) | mixed | 2 | 0.40 | +12.0 (SD 2.8) |" in md


def test_an_installed_semibench_without_a_git_commit_still_makes_a_leaderboard(tmp_path):
    """A pip-installed semibench records git_commit None; the leaderboard crashed joining it."""
    from tests.report_fixtures import eval_json, make_seed

    root = tmp_path / "runs"
    installed = {"versions": {"semibench": "0.1.0", "git_commit": None}}
    make_seed(root, "tiny", [eval_json("math_heldout", 20.0, 4.0) | installed])
    make_run(root, "math", "dpo", "1", evals={4: [eval_json("math_heldout", 25.0, 4.0) | installed]})
    [path] = write_leaderboards(root, tmp_path / "lb").values()
    header, rows = _header_and_rows(path.read_text())
    assert [r[header.index("git_commit")] for r in rows] == ["", ""] and rows[1][header.index("semibench_version")] == "0.1.0"
