"""The verdicts' forest plot: one panel per family, the numbers beside each row, resolved rows filled in colour."""

import matplotlib.colors
import matplotlib.image
import numpy as np

from semibench.reports.verdict_figure import RESOLVED_COLOR, draw_verdicts, families, row_text

CONTROL = {"task": "mixed", "benchmark": "math_heldout", "a": "GRPO (n=8)", "b": "Seed (smollm2)", "delta": 21.8, "ci_lower": 10.6,
           "ci_upper": 33.0, "p_value": 0.006, "p_adjusted": 0.03, "family_size": 2, "mde": 15.1, "verdict": "A better",
           "method": "Welch t-test over training seeds (3 vs 1)"}
REGIME = CONTROL | {"a": "Online GroupDPO (s=1)", "b": "Offline GroupDPO (s=∞)", "delta": -0.2, "ci_lower": -16.0, "ci_upper": 15.5,
                    "p_value": 0.96, "p_adjusted": 1.0, "mde": 20.7, "verdict": "not resolved",
                    "method": "paired t-test over training seeds (3 shared)"}
UNTESTED = {"task": "mixed", "benchmark": "if_heldout", "a": "GRPO (n=8)", "b": "Seed (smollm2)", "verdict": "not compared",
            "method": "the two sides scored different items"}


def resolved_pixels(path) -> int:
    image = matplotlib.image.imread(path)[..., :3]
    target = np.array(matplotlib.colors.to_rgb(RESOLVED_COLOR))
    return int((np.abs(image - target).max(axis=-1) < 0.02).sum())


def test_the_forest_plot_draws_each_tested_row_with_its_numbers_and_colours_only_the_resolved(tmp_path):
    assert list(families([CONTROL, UNTESTED, REGIME])) == [("mixed", "math_heldout")]  # a row with no test has nothing to draw
    assert row_text(CONTROL) == "+21.8 [+10.6, +33.0]  p(Holm) 0.03  MDE 15.1  Welch seeds"
    assert row_text(REGIME | {"p_adjusted": float("nan")}).endswith("no test  MDE 20.7  paired seeds")

    both, unresolved_only = tmp_path / "both.png", tmp_path / "unresolved.png"
    assert draw_verdicts([CONTROL, REGIME, UNTESTED], both) and draw_verdicts([REGIME], unresolved_only)
    assert resolved_pixels(both) > 50 and resolved_pixels(unresolved_only) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.png", "unresolved.png"]  # no temporary file left

    assert not draw_verdicts([UNTESTED], tmp_path / "none.png") and not (tmp_path / "none.png").exists()
