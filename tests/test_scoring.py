"""Scoring of existing judge outputs: AlpacaEval 2.0 (published numbers) and Arena-Hard v0.1 (hand-made judgments)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from semibench.cli import app
from semibench.evals.scoring.alpaca import alpaca_winrate, length_controlled_winrate, load_annotations
from semibench.evals.scoring.arena_hard import game_battles, load_judgments, parse_verdict, score_judgments

PUBLISHED = ("claude-2.1", "gpt-3.5-turbo-1106", "alpaca-7b")
runner = CliRunner()


def _leaderboard(shared_data) -> dict[str, dict]:
    with open(shared_data / "alpaca_eval" / "leaderboard_subset.csv", newline="") as f:
        return {row[""]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("model", PUBLISHED)
def test_alpaca_reproduces_published_leaderboard(shared_data, model):
    published = _leaderboard(shared_data)[model]
    got = alpaca_winrate(load_annotations(shared_data / "alpaca_eval" / "annotations" / model / "annotations.json"))
    for key in ("win_rate", "standard_error", "discrete_win_rate"):
        assert abs(got[key] - float(published[key])) < 1e-6, key
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert got[key] == int(published[key]), key


def test_alpaca_preference_encoding():
    # 1 baseline wins, 2 model wins, 1.5 and 0 draws, 1.75 a weighted judge's 75% for the model
    # (a None, which alpaca-eval drops silently, is refused: tests/test_failures.py).
    got = alpaca_winrate([{"preference": p} for p in (1, 2, 1.5, 0, 1.75)])
    assert got["win_rate"] == pytest.approx(100 * (0 + 1 + 0.5 + 0.5 + 0.75) / 5)
    assert got["standard_error"] == pytest.approx(100 * np.std([0, 1, 0.5, 0.5, 0.75], ddof=1) / np.sqrt(5))
    assert (got["n_wins"], got["n_wins_base"], got["n_draws"], got["n_total"]) == (2, 1, 2, 5)
    assert got["discrete_win_rate"] == pytest.approx(100 * (0 + 1 + 0.5 + 0.5 + 1) / 5)  # 1.75 rounds to a win
    json.dumps(got)  # plain Python numbers


def test_alpaca_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations file not found"):
        load_annotations(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_annotations(tmp_path / "bad.json")
    (tmp_path / "nopref.json").write_text('[{"instruction": "x"}]')
    with pytest.raises(ValueError, match="'preference'"):
        load_annotations(tmp_path / "nopref.json")


def test_length_controlled_needs_df_gamed():
    value, note = length_controlled_winrate([{"preference": 2.0}])
    assert value is None and "not computed" in note and "df_gamed.csv" in note


def _synthetic_lc_inputs(tmp_path, n=60):
    """Annotations plus a made-up df_gamed.csv in alpaca-eval's column layout: exercises the plumbing, not the numbers."""
    import pandas as pd

    rng = np.random.default_rng(0)
    annotations = [{"preference": float(rng.uniform(1, 2)), "output_1": "b" * int(rng.integers(10, 500)),
                    "output_2": "m" * int(rng.integers(10, 500)), "generator_1": "base", "generator_2": "mine"} for _ in range(n)]
    gamed = pd.concat([pd.DataFrame({"model": name, "index": np.arange(n), "preference": rng.uniform(0, 1, n),
                                     "std_delta_len": sign * rng.uniform(0, 2, n), "instruction_difficulty": np.linspace(-1, 1, n),
                                     "not_gamed_baseline": False}) for name, sign in (("verbose", 1), ("concise", -1))])
    gamed.to_csv(tmp_path / "df_gamed.csv", index=False)
    return annotations, tmp_path / "df_gamed.csv"


def test_length_controlled_calls_alpaca_eval_with_local_df_gamed(tmp_path):
    annotations, df_gamed = _synthetic_lc_inputs(tmp_path)
    value, note = length_controlled_winrate(annotations, df_gamed)  # HF_HUB_OFFLINE=1: a hub call would raise
    assert str(df_gamed) in note
    assert 0 < value["length_controlled_winrate"] < 100 and value["lc_standard_error"] >= 0
    assert value["win_rate"] == pytest.approx(alpaca_winrate(annotations)["win_rate"])
    with pytest.raises(FileNotFoundError):
        length_controlled_winrate(annotations, tmp_path / "missing.csv")


@pytest.mark.parametrize(("text", "label"), [
    ("Assistant B is better.\n\nMy final verdict is: [[B>A]]", "B>A"),
    ("My final verdict is Assistant A is significantly better: [[A>>B]]", "A>>B"),
    ("Tie, relatively the same: [[A=B]]", "A=B"),
    ("[[B>>A]] ... to repeat, [[B>>A]]", "B>>A"),  # the same verdict twice is fine
    ("[[A>B]] on reflection [[B>A]]", None),  # contradictory
    ("Both answers are good.", None),  # no verdict
    ("My final verdict is [A>B]", None),  # single brackets are not the v0.1 pattern
    ("[[A<B]]", None),  # matched by the regex but not a label arena-hard scores
    ("[[]] and [[C>D]]", None),
])
def test_parse_verdict(text, label):
    assert parse_verdict(text) == label


@pytest.mark.parametrize(("label", "model_is_a", "battles"), [
    ("A>>B", False, [0.0] * 3), ("A>>B", True, [1.0] * 3), ("A>B", False, [0.0]), ("A>B", True, [1.0]),
    ("A=B", False, [0.5]), ("A=B", True, [0.5]), ("B>A", False, [1.0]), ("B>>A", True, [0.0] * 3),
    (None, False, []), ("A<B", True, []), (["A>B"], False, []),
])
def test_game_battles_orders_and_weight(label, model_is_a, battles):
    assert game_battles(label, model_is_a) == battles


def _write(directory, model, pairs):
    directory.mkdir(exist_ok=True)
    rows = [{"question_id": q, "model": model, "judge": "j", "games": [{"user_prompt": "...", "judgment": "...", "score": g} for g in games]}
            for q, games in enumerate(pairs)]
    (directory / f"{model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


# 4 x (win, win) + 2 x (strong loss, strong loss) + 2 x (tie, tie) + 2 x (strong win, tie):
# 14 wins, 12 losses, 6 ties in 32 battles; unregularised BT on a model-vs-baseline star gives P = (14 + 6/2) / 32.
MIX = [("B>A", "A>B")] * 4 + [("A>>B", "B>>A")] * 2 + [("A=B", "A=B")] * 2 + [("B>>A", "A=B")] * 2
MIX_SCORE = 100 * 17 / 32


def test_bt_mle_equals_weighted_win_fraction(tmp_path):
    s = score_judgments(_write(tmp_path / "j", "mixed", MIX))["mixed"]
    assert s["score"] == pytest.approx(MIX_SCORE, abs=1e-4)
    assert s["lower"] < s["score"] < s["upper"] and (s["n"], s["skipped"]) == (10, 0)


def test_all_strong_wins_near_100(tmp_path):
    d = _write(tmp_path / "j", "winner", [("B>>A", "A>>B")] * 20)
    alone = score_judgments(d)["winner"]  # one outcome only: the MLE is the limit
    assert 95 < alone["lower"] <= alone["score"] <= alone["upper"] <= 100
    together = score_judgments(_write(d, "mixed", MIX))  # fitted jointly by sklearn
    assert 95 < together["winner"]["lower"] <= together["winner"]["score"] <= together["winner"]["upper"] <= 100
    assert together["mixed"]["score"] == pytest.approx(MIX_SCORE, abs=1e-4)


def test_all_ties_exactly_50(tmp_path):
    s = score_judgments(_write(tmp_path / "j", "tie", [("A=B", "A=B")] * 15))["tie"]
    assert s["score"] == 50 and s["lower"] == 50 and s["upper"] == 50


def test_unusable_verdicts_are_skipped_and_counted(tmp_path):
    d = _write(tmp_path / "j", "mixed", MIX + [(None, "A<B"), ("B>A",), (None, None)])
    s = score_judgments(d)["mixed"]
    # the extra lone "B>A" adds one win: (15 + 3) / 33
    assert (s["n"], s["skipped"]) == (13, 5) and s["score"] == pytest.approx(100 * 18 / 33, abs=1e-4)
    _write(d, "silent", [(None, None)] * 3)
    assert score_judgments(d)["silent"] == {"score": None, "lower": None, "upper": None, "n": 3, "skipped": 6}


def test_bootstrap_is_seeded_and_ordered(tmp_path):
    d = _write(tmp_path / "j", "mixed", MIX * 3)
    _write(d, "other", [("A>B", "B>A")] * 10 + MIX)
    a, b = score_judgments(d, seed=1), score_judgments(d, seed=1)
    assert a == b and a != score_judgments(d, seed=2)
    assert all(s["lower"] <= s["score"] <= s["upper"] for s in a.values())


def test_judgment_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_judgments(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no \\*.jsonl"):
        load_judgments(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"model": "x", "games": []}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_judgments(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"model": "gpt-4-0314", "games": []}\n')
    with pytest.raises(ValueError, match="against itself"):
        load_judgments(tmp_path)


def test_cli_does_not_import_heavy_modules():
    code = "import semibench.cli, sys; assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_alpaca_json_matches_published(shared_data):
    path = shared_data / "alpaca_eval" / "annotations" / "alpaca-7b" / "annotations.json"
    result = runner.invoke(app, ["score", "alpaca_eval", "--annotations", str(path), "--json"])
    assert result.exit_code == 0, result.output
    got, published = json.loads(result.stdout), _leaderboard(shared_data)["alpaca-7b"]
    assert abs(got["win_rate"] - float(published["win_rate"])) < 1e-6
    assert abs(got["standard_error"] - float(published["standard_error"])) < 1e-6
    assert got["length_controlled_winrate"] is None and "df_gamed.csv" in got["lc_note"]


def test_cli_arena_json_and_table(tmp_path):
    d = _write(tmp_path / "j", "mixed", MIX)
    result = runner.invoke(app, ["score", "arena_hard", "--judgments", str(d), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["mixed"]
    assert got["score"] == pytest.approx(MIX_SCORE, abs=1e-4) and got["lower"] <= got["score"] <= got["upper"]
    table = runner.invoke(app, ["score", "arena_hard", "--judgments", str(d)])
    assert table.exit_code == 0 and "mixed" in table.output and "53.1" in table.output


@pytest.mark.parametrize(("args", "message"), [
    (["alpaca_eval", "--annotations", "{tmp}/missing.json"], "annotations file not found"),
    (["alpaca_eval", "--annotations", "{tmp}/bad.json"], "not valid JSON"),
    (["arena_hard", "--judgments", "{tmp}/missing"], "judgment directory not found"),
    (["arena_hard", "--judgments", "{tmp}"], "bad.jsonl:1 is not valid JSON"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    result = runner.invoke(app, ["score", *(a.format(tmp=tmp_path) for a in args)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


# avg@N (scoring/samples.py): hand-computed numbers.

def test_avg_at_one_is_mean_and_binomial_standard_error():
    from semibench.evals.scoring.samples import avg_at_n

    # 3 of 4 right: mean 0.75, sample std sqrt(0.25) = 0.5, stderr 0.5 / 2 = 0.25 -> 75 +- 25 %.
    assert avg_at_n([[1.0], [1.0], [0.0], [1.0]]) == pytest.approx((75.0, 25.0))


def test_avg_at_n_standard_error_is_over_seeds():
    from semibench.evals.scoring.samples import avg_at_n, seed_means

    # 2 prompts x 3 samples: seed scores (1+0)/2, (1+1)/2, (0+0)/2 = 0.5, 1, 0; mean 0.5;
    # std(ddof=1) = sqrt(((0)^2 + 0.5^2 + 0.5^2) / 2) = 0.5; stderr = 0.5 / sqrt(3).
    mean, stderr = avg_at_n([[1, 1, 0], [0, 1, 0]])
    assert mean == pytest.approx(50.0) and stderr == pytest.approx(100 * 0.5 / 3**0.5)
    assert seed_means([50.0, 100.0, 0.0]) == pytest.approx((50.0, 100 * 0.5 / 3**0.5))
    # Not the per-prompt standard error (which would be std(0.667, 0.333) / sqrt(2) = 0.1667).
    assert stderr != pytest.approx(100 / 6)


def test_avg_at_n_edge_cases():
    from semibench.evals.scoring.samples import avg_at_n, seed_means

    assert avg_at_n([[1.0]]) == (100.0, None)
    assert seed_means([42.0]) == (42.0, None)
    with pytest.raises(ValueError, match="same, non-zero number"):
        avg_at_n([[1, 0], [1]])
    with pytest.raises(ValueError, match="no scores"):
        avg_at_n([])
