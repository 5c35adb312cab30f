"""`semibench compare`: eval files paired item by item (the statistics themselves: test_stats.py)."""

import json

import pytest
from typer.testing import CliRunner

from semibench.cli import app
from semibench.config import ConfigError
from semibench.reports.compare import compare_evals, eval_dir_of


def write_eval(path, bench, rows):
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{bench}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def math_rows(scores_by_question):
    return [{"key": f"k{q}", "question": q, "gold": "1", "scores": s} for q, s in scores_by_question.items()]


def test_items_pair_by_identity_not_by_file_order(tmp_path):
    a = {"q1": [1, 1], "q2": [0, 1], "q3": [1, 0], "q4": [1, 1]}
    b = {"q4": [0, 0], "q3": [1, 0], "q2": [0, 0], "q1": [1, 0]}  # same items, another order
    write_eval(tmp_path / "a", "math_heldout", math_rows(a))
    write_eval(tmp_path / "b", "math_heldout", math_rows(b))
    [row] = compare_evals(tmp_path / "a", tmp_path / "b")
    assert row["n_items"] == 4 and row["samples_per_item"] == 2
    assert row["score_a"] == pytest.approx(75.0) and row["score_b"] == pytest.approx(25.0)
    assert row["delta"] == pytest.approx(50.0)  # per item: +0.5, +0.5, 0, +1 -> mean 0.5


def test_different_item_sets_are_refused_naming_the_mismatch(tmp_path):
    write_eval(tmp_path / "a", "math_heldout", math_rows({"q1": [1], "q2": [0], "q3": [1]}))
    write_eval(tmp_path / "b", "math_heldout", math_rows({"q1": [1], "q2": [0], "q9": [1]}))
    with pytest.raises(ConfigError, match=r"math_heldout: the sides scored different items \(1 only in A, 1 only in B, 2 shared\)"):
        compare_evals(tmp_path / "a", tmp_path / "b")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2 and "different items" in result.output


def test_a_run_directory_stands_for_its_newest_evaluated_checkpoint(tmp_path):
    run = tmp_path / "runs" / "math-dpo-s1-smol-seed0-x"
    write_eval(run / "eval" / "step_000010", "math_heldout", math_rows({"q1": [0]}))
    write_eval(run / "eval" / "step_000030", "math_heldout", math_rows({"q1": [1]}))
    assert eval_dir_of(run) == run / "eval" / "step_000030"
    with pytest.raises(ConfigError, match="no evaluation with per-sample scores"):
        eval_dir_of(tmp_path / "nothing")


def test_a_run_with_a_selected_checkpoint_stands_for_that_one(tmp_path):
    """Tables and verdicts show the checkpoint `semibench select` picked; compare takes the same one."""
    run = tmp_path / "runs" / "math-dpo-s1-smol-seed0-x"
    write_eval(run / "eval" / "step_000010", "math_heldout", math_rows({"q1": [0]}))
    write_eval(run / "eval" / "step_000030", "math_heldout", math_rows({"q1": [1]}))
    (run / "selected.json").write_text(json.dumps({"step": 10, "by": "numina_valid", "score": 1.0}))
    assert eval_dir_of(run) == run / "eval" / "step_000010"


def test_repeated_items_count_once_each_and_unscored_items_are_dropped(tmp_path):
    """A question that occurs twice is two items (the side's score is its file's mean); an Arena-Hard game with
    no usable verdict (`scores: [null]`) is dropped from both sides, not a crash."""
    rows_a = math_rows({"q1": [1], "q2": [1], "q3": [0]}) + [{"key": "k1b", "question": "q1", "gold": "1", "scores": [0]}]
    rows_b = math_rows({"q1": [0], "q2": [0], "q3": [0]}) + [{"key": "k1b", "question": "q1", "gold": "1", "scores": [0]}]
    write_eval(tmp_path / "a", "math_heldout", rows_a)
    write_eval(tmp_path / "b", "math_heldout", rows_b)
    [row] = compare_evals(tmp_path / "a", tmp_path / "b")
    assert row["n_items"] == 4 and row["score_a"] == pytest.approx(50.0)  # 2 of 4 rows, as the file says
    games = lambda scores: [{"key": f"k{i}", "uid": f"u{i}", "scores": [s]} for i, s in enumerate(scores)]  # noqa: E731
    write_eval(tmp_path / "c", "arena_hard--local-tiny", games([1.0, None, 0.5, 1.0]))
    write_eval(tmp_path / "d", "arena_hard--local-tiny", games([0.0, 0.0, 0.5, 0.0]))
    [row] = compare_evals(tmp_path / "c", tmp_path / "d")
    assert row["n_items"] == 3 and row["items_dropped"] == 1 and row["delta"] == pytest.approx(100 * 2 / 3)


def test_json_is_strict_when_no_test_could_be_made(tmp_path):
    write_eval(tmp_path / "a", "math_heldout", math_rows({"q1": [1]}))
    write_eval(tmp_path / "b", "math_heldout", math_rows({"q1": [0]}))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.output
    [row] = json.loads(result.output)
    assert row["p_value"] is None and row["verdict"] == "not resolved"


def test_the_cli_prints_delta_ci_and_verdict(tmp_path):
    a = {f"q{i}": [1.0] for i in range(30)}
    b = {f"q{i}": [float(i % 3 == 0)] for i in range(30)}
    write_eval(tmp_path / "a", "math_heldout", math_rows(a))
    write_eval(tmp_path / "b", "math_heldout", math_rows(b))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["verdict"] == "A better (1 training seed)" and row["ci_lower"] > 0 and row["p_value"] == row["mcnemar_p_value"] < 0.001


def test_judged_benchmarks_pair_per_instruction_and_per_question(tmp_path):
    """AlpacaEval pairs over instructions and Arena-Hard over question ids, whatever each side's prompt
    (a seed row prompted with another chat template has other prompt hashes); the judged benchmark's
    shared generations file, which holds no scores, is not a benchmark of its own."""
    instructions = ["Write a haiku.", "Explain DNS.", "List 3 primes.", "Say hi."]
    a_prefs, b_prefs = [1.0, 0.75, 0.5, 1.0], [0.25, 0.75, 0.0, 0.5]
    for side, prefs in (("a", a_prefs), ("b", b_prefs)):
        rows = [{"key": f"{side}-{i}", "instruction": text, "preferences": [p + 1], "scores": [p]} for i, (text, p) in enumerate(zip(instructions, prefs))]
        write_eval(tmp_path / side, "alpaca_eval--local-tiny", rows[::-1] if side == "b" else rows)
        write_eval(tmp_path / side, "alpaca_eval", [{"key": f"{side}-{i}", "completions": ["..."]} for i in range(4)])  # generations only
        games = [{"key": f"{side}-{i}", "uid": f"u{i}", "scores": [s]} for i, s in enumerate([1.0, 0.0, 0.5, 1.0] if side == "a" else [0.0, 0.0, 0.5, 0.0])]
        write_eval(tmp_path / side, "arena_hard--local-tiny", games)
    rows = {r["benchmark"]: r for r in compare_evals(tmp_path / "a", tmp_path / "b")}
    assert set(rows) == {"alpaca_eval--local-tiny", "arena_hard--local-tiny"}
    assert rows["alpaca_eval--local-tiny"]["n_items"] == 4 and rows["alpaca_eval--local-tiny"]["delta"] == pytest.approx(100 * (0.75 + 0 + 0.5 + 0.5) / 4)
    assert rows["arena_hard--local-tiny"]["delta"] == pytest.approx(100 * 2.0 / 4)
