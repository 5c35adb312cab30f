"""The cost figure (cost_<task>.png): held-out math against steps, training seconds and generated tokens.

Fixture runs written by hand (tests/report_fixtures.py); every expected value below is computed by
hand from the fixture's metric rows and eval JSON. Draws figures only: no training, seconds to run.
"""

import csv

import pytest

from semibench.reports import plots
from semibench.reports.plots import validation_band, write_plots
from tests.report_fixtures import eval_json, fixture_tree, make_run, make_seed

HEADER = ["figure", "panel", "run_id", "label", "step", "value", "x", "ci_low", "ci_high"]


def _rows(path):
    rows = list(csv.reader(path.read_text().splitlines()))
    return rows[0], rows[1:]


def _costs(rows, run_id, panel):
    """(step, value, x, ci_low, ci_high) of one run's panel; '' (no band) stays None."""
    num = lambda v: None if v == "" else float(v)  # noqa: E731
    return [(int(r[4]), float(r[5]), num(r[6]), num(r[7]), num(r[8])) for r in rows if r[2] == run_id and r[1] == panel]


@pytest.fixture()
def cost_tree(tmp_path):
    """Seed (ci_items), online DPO (2 checkpoints; ci_items, then se_items only; tokens and growing generate time),
    GRPO (1 checkpoint, stderr only, no generated_tokens logged), offline DPO (2 checkpoints, no uncertainty)."""
    root = tmp_path / "runs"
    make_seed(root, "tiny", [eval_json("math_heldout", 20.0, 4.0, ci_items=(12.5, 27.5))])
    # Per-step seconds: 0.1 + (2.0 + step) + 0.5 + 3.0 = 5.6 + step; tokens 100 + 10 * step.
    online = make_run(root, "mixed", "dpo", "1", evals={
        2: [eval_json("math_heldout", 25.0, 9.9, se_items=2.5, ci_items=(20.0, 30.0))],
        4: [eval_json("math_heldout", 30.0, 9.9, se_items=3.0)],
    }, extra_metrics=lambda step: {"generated_tokens": 100.0 + 10 * step, "time/generate": 2.0 + step})
    grpo = make_run(root, "mixed", "grpo", "1", evals={4: [eval_json("math_heldout", 31.0, 2.0)]})
    offline = make_run(root, "mixed", "dpo", "inf", evals={2: [eval_json("math_heldout", 21.0)], 4: [eval_json("math_heldout", 22.0)]},
                       extra_metrics=lambda step: {"generated_tokens": 50.0})
    return root, {"online": online.name, "grpo": grpo.name, "offline": offline.name}


def test_cost_figure_plots_exact_steps_seconds_tokens_and_bands(cost_tree, tmp_path):
    root, ids = cost_tree
    out = tmp_path / "fig"
    drawn = write_plots(root, out)
    assert sorted(drawn["cost_mixed"]) == sorted(ids.values())
    header, rows = _rows(out / "cost_mixed.csv")
    assert header == HEADER and {r[0] for r in rows} == {"cost_mixed"}
    assert {r[1] for r in rows} == {"step", "seconds", "tokens"}
    online = ids["online"]
    # Seed point (ci_items, its stderr ignored), step 2 (ci_items), step 4 (score ± 1.96 * se_items).
    band = [(12.5, 27.5), (20.0, 30.0), (pytest.approx(30.0 - 1.96 * 3.0), pytest.approx(30.0 + 1.96 * 3.0))]
    scores = [(0, 20.0), (2, 25.0), (4, 30.0)]
    xs = {"step": [0, 2, 4],
          "seconds": [0.0, 5.6 + 6.6, 5.6 + 6.6 + 7.6 + 8.6],  # checkpoint N: rows with step < N
          "tokens": [0.0, 100.0 + 110.0, 100.0 + 110.0 + 120.0 + 130.0]}
    for panel, x in xs.items():
        expected = [(s, v, pytest.approx(xx), lo, hi) for (s, v), xx, (lo, hi) in zip(scores, x, band)]
        assert _costs(rows, online, panel) == expected, panel
    assert {r[6] for r in rows if r[2] == online and r[1] == "seconds"} == {"0.0", "12.2", "28.4"}
    # GRPO: one checkpoint after 4 steps of 5.6 s, band from its stderr; it logged no generated_tokens: no tokens points.
    grpo_band = (pytest.approx(31.0 - 1.96 * 2.0), pytest.approx(31.0 + 1.96 * 2.0))
    assert _costs(rows, ids["grpo"], "seconds") == [(0, 20.0, 0.0, 12.5, 27.5), (4, 31.0, pytest.approx(22.4), *grpo_band)]
    assert _costs(rows, ids["grpo"], "tokens") == []
    # Offline: no uncertainty recorded, so no band (empty cells).
    assert _costs(rows, ids["offline"], "tokens") == [(0, 20.0, 0.0, 12.5, 27.5), (2, 21.0, 100.0, None, None), (4, 22.0, 200.0, None, None)]
    labels = {r[2]: r[3] for r in rows}
    assert labels == {online: "Online DPO (s=1)", ids["grpo"]: "GRPO (n=8)", ids["offline"]: "Offline DPO (s=∞)"}
    png = (out / "cost_mixed.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    index = (out / "figures.md").read_text()
    assert "![cost_mixed](cost_mixed.png)" in index and "95% CI over items" in index


def test_no_cost_figure_when_every_run_has_one_checkpoint(tmp_path):
    root = tmp_path / "runs"
    make_seed(root, "tiny", [eval_json("math_heldout", 20.0, 4.0, ci_items=(12.5, 27.5))])
    for s in ("1", "inf"):
        make_run(root, "math", "dpo", s, evals={4: [eval_json("math_heldout", 30.0, se_items=3.0)]})
    drawn = write_plots(root, tmp_path / "fig")
    assert "dynamics_math" in drawn and not any(name.startswith("cost_") for name in drawn)
    assert not list((tmp_path / "fig").glob("cost_*")) and "cost_" not in (tmp_path / "fig" / "figures.md").read_text()


def test_cost_figure_leaves_the_other_figures_byte_identical(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    fixture_tree(root)  # evals at steps 2 and 4: a cost figure is drawn
    with_cost = write_plots(root, tmp_path / "with")
    assert "cost_mixed" in with_cost
    header, _ = _rows(tmp_path / "with" / "dynamics_mixed.csv")
    assert header == ["figure", "panel", "run_id", "label", "step", "value"]
    monkeypatch.setattr(plots, "_write_cost_figures", lambda *args: [])
    without = write_plots(root, tmp_path / "without")
    assert set(with_cost) - set(without) == {"cost_mixed"}
    for name in without:
        assert (tmp_path / "with" / f"{name}.csv").read_bytes() == (tmp_path / "without" / f"{name}.csv").read_bytes(), name
    assert (tmp_path / "with" / "figures.md").read_text().startswith((tmp_path / "without" / "figures.md").read_text())


def test_validation_band_prefers_ci_items_then_se_items_then_stderr():
    assert validation_band({"score": 40.0, "ci_items": [30.2, 49.8], "se_items": 4.9, "stderr": 0.3}) == (30.2, 49.8)
    assert validation_band({"score": 40.0, "ci_items": None, "se_items": 5.0, "stderr": 0.3}) == (pytest.approx(30.2), pytest.approx(49.8))
    assert validation_band({"score": 40.0, "stderr": 1.0}) == (pytest.approx(38.04), pytest.approx(41.96))
    assert validation_band({"score": 40.0, "stderr": None}) == (None, None)
