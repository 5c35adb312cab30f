"""The verdicts' forest plot: one panel per family on one x scale, the table's numbers beside each row,
resolved rows filled, and a figure that can never cost the verdicts their table."""

import logging

import matplotlib
import matplotlib.colors
import matplotlib.image
import numpy as np

from semibench.reports import verdicts
from semibench.reports.verdict_figure import RESOLVED_COLOR, draw_family, draw_verdicts, families, row_text

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CONTROL = {"task": "mixed", "benchmark": "math_heldout", "a": "GRPO (n=8)", "b": "Seed (smollm2)", "delta": 21.8, "ci_lower": 10.6,
           "ci_upper": 33.0, "p_value": 0.006, "p_adjusted": 0.0496, "family_size": 2, "mde": 15.1, "verdict": "A better", "seeds_a": 3, "seeds_b": 0,
           "method": "Welch t-test over training seeds (3 vs 1)"}
REGIME = CONTROL | {"a": "Online GroupDPO (s=1)", "b": "Offline GroupDPO (s=∞)", "delta": -0.2, "ci_lower": -16.0, "ci_upper": 15.5,
                    "p_value": 0.96, "p_adjusted": 1.0, "mde": 20.7, "verdict": "not resolved",
                    "method": "paired t-test over training seeds (3 shared)"}
ONE_ITEM = REGIME | {"benchmark": "if_heldout", "delta": 1.0, "ci_lower": float("nan"), "ci_upper": float("nan"), "p_value": float("nan"),
                     "p_adjusted": float("nan"), "mde": float("nan"), "method": "one item: no uncertainty"}
UNTESTED = {"task": "mixed", "benchmark": "if_heldout", "a": "GRPO (n=8)", "b": "Seed (smollm2)", "verdict": "not compared",
            "method": "the two sides scored different items"}


def resolved_pixels(path) -> int:
    image = matplotlib.image.imread(path)[..., :3]
    target = np.array(matplotlib.colors.to_rgb(RESOLVED_COLOR))
    return int((np.abs(image - target).max(axis=-1) < 0.02).sum())


def test_each_row_prints_the_tables_numbers():
    assert row_text(CONTROL) == "+21.80 [+10.60, +33.00]  p (Holm) 0.0496  MDE 15.10  Welch seeds"  # not 0.05 beside a filled dot
    assert row_text(CONTROL | {"p_adjusted": 2.3e-16}).startswith("+21.80 [+10.60, +33.00]  p (Holm) <1e-6")
    assert row_text(ONE_ITEM) == "+1.00 [–, –]  p (Holm) –  MDE –  –"


def test_a_family_draws_filled_dots_for_resolved_rows_hollow_for_the_rest_and_a_band_of_twice_the_mde():
    fig, ax = plt.subplots()
    draw_family(ax, [CONTROL, REGIME, ONE_ITEM])
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    faces = [matplotlib.colors.to_hex(d.get_markerfacecolor()) for d in dots]
    assert faces == [matplotlib.colors.to_hex(RESOLVED_COLOR), "#ffffff", "#ffffff"]
    assert [d.get_ydata()[0] for d in dots] == [2, 1, 0]  # the table's first row on top
    widths = sorted(round(c.get_paths()[0].get_extents().width, 6) for c in ax.collections)
    assert widths == [30.2, 41.4]  # ± MDE of the two rows that have one; the one-item row has none
    plt.close(fig)


def test_one_panel_per_family_and_only_resolved_rows_in_colour(tmp_path):
    assert list(families([CONTROL, UNTESTED, REGIME, ONE_ITEM])) == [("mixed", "math_heldout"), ("mixed", "if_heldout")]
    both, unresolved_only = tmp_path / "both.png", tmp_path / "unresolved.png"
    assert draw_verdicts([CONTROL, REGIME, UNTESTED, ONE_ITEM], both) == 2
    assert draw_verdicts([REGIME], unresolved_only) == 1
    assert resolved_pixels(both) > 50 and resolved_pixels(unresolved_only) == 0
    assert draw_verdicts([UNTESTED], tmp_path / "none.png") == 0 and not (tmp_path / "none.png").exists()


def test_a_failing_figure_costs_neither_the_table_nor_leaves_an_older_figure(tmp_path, monkeypatch, caplog):
    """The grid writes its verdicts after hours of training: a figure error must cost only the figure."""
    out = tmp_path / "tables"
    out.mkdir()
    (out / "verdicts.png").write_bytes(b"an older figure")
    monkeypatch.setattr(verdicts, "verdict_rows", lambda root, **_: [CONTROL, REGIME])

    def broken(rows, path):
        raise ValueError("Unknown symbol: \\foo")  # what matplotlib's mathtext raises on a label with $...$

    monkeypatch.setattr(verdicts, "draw_verdicts", broken)
    with caplog.at_level(logging.WARNING):
        written = verdicts.write_verdicts(tmp_path, out)
    assert set(written) == {"verdicts"} and not (out / "verdicts.png").exists()
    assert "| GRPO (n=8) | Seed (smollm2) |" in (out / "verdicts.md").read_text() and (out / "verdicts.csv").is_file()
    assert "figure not drawn (ValueError: Unknown symbol" in caplog.text

    monkeypatch.undo()  # the real figure, then nothing left to compare: no file of the earlier table stays
    monkeypatch.setattr(verdicts, "verdict_rows", lambda root, **_: [CONTROL, REGIME])
    assert set(verdicts.write_verdicts(tmp_path, out)) == {"verdicts", "figure"}
    monkeypatch.setattr(verdicts, "verdict_rows", lambda root, **_: [])
    assert verdicts.write_verdicts(tmp_path, out) == {} and list(out.iterdir()) == []
