"""The verdicts as a forest plot: `verdicts.png` beside `verdicts.md` and `.csv`.

One panel per family (a task's benchmark, the comparisons Holm adjusts together), one row per
comparison: A − B in points with its 95% CI, filled when resolved after Holm, hollow when not. The
grey band is ± the comparison's MDE (80% power at the unadjusted alpha), so a hollow marker inside a
narrow band says "the arms are within that many points" and one inside a wide band says "this grid
cannot tell". The panels share one x scale, so bands compare across benchmarks. The numbers drawn
are printed beside each row as the table prints them. Reads verdict rows only (`verdicts.verdict_rows`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from semibench.reports.compare import format_p, short_test_name
from semibench.runs import atomic_path

RESOLVED_COLOR = "tab:blue"
UNRESOLVED_COLOR = "0.35"
BAND_COLOR = "0.88"
LABEL_WIDTH = 48  # characters a row label wraps at (a seed model named by a local path is long)


def families(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The tested rows grouped by (task, benchmark), in the order the table lists them; rows with no test
    (different items on the two sides) are left out."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if "delta" in r:
            out.setdefault((r["task"], r["benchmark"]), []).append(r)
    return out


def _points(value: float, spec: str = "+.2f") -> str:
    return "–" if value != value else format(value, spec)


def row_text(r: dict[str, Any]) -> str:
    """The numbers drawn for one comparison, formatted as the verdicts table formats them."""
    return (f"{_points(r['delta'])} [{_points(r['ci_lower'])}, {_points(r['ci_upper'])}]  "
            f"p (Holm) {format_p(r.get('p_adjusted', r.get('p_value')))}  MDE {_points(r['mde'], '.2f')}  {short_test_name(r.get('method', ''))}")


def draw_family(ax, family: list[dict[str, Any]]) -> None:
    """One family's rows into `ax`, the table's first row on top."""
    ys = range(len(family))[::-1]
    for y, r in zip(ys, family):
        resolved = r["verdict"] != "not resolved"
        color = RESOLVED_COLOR if resolved else UNRESOLVED_COLOR
        if r["mde"] == r["mde"]:
            ax.fill_betweenx([y - 0.32, y + 0.32], -r["mde"], r["mde"], color=BAND_COLOR, lw=0)
        if r["ci_lower"] == r["ci_lower"]:
            ax.plot([r["ci_lower"], r["ci_upper"]], [y, y], color=color, lw=1.6)
        ax.plot([r["delta"]], [y], "o", ms=6, color=color, mfc=color if resolved else "white")
        ax.annotate(row_text(r), (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8, family="monospace")
    ax.axvline(0, color="0.2", lw=0.8)
    ax.set_yticks(list(ys), [textwrap.fill(f"{r['a']} vs {r['b']}", LABEL_WIDTH) for r in family], fontsize=8)
    ax.set_ylim(-0.6, len(family) - 0.4)
    ax.grid(axis="x", alpha=0.3)


def draw_verdicts(rows: list[dict[str, Any]], path: Path) -> int:
    """Write the forest plot of `rows` to `path` (PNG); returns the number of panels (0: no row was tested,
    nothing written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = families(rows)
    if not grouped:
        return 0
    heights = [len(g) for g in grouped.values()]
    fig, axes = plt.subplots(len(grouped), 1, figsize=(14, 0.42 * sum(heights) + 1.1 * len(grouped) + 0.8), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    try:
        for ax, ((task, bench), family) in zip(axes[:, 0], grouped.items()):
            draw_family(ax, family)
            ax.set_title(f"{bench}, task {task}: Holm over {family[0].get('family_size', len(family))}", fontsize=10, loc="left")
        axes[-1, 0].set_xlabel("A − B [points]: dot the estimate, line its 95% CI, grey ± the MDE; filled = resolved after Holm")
        fig.suptitle("Verdicts (uncertainty as each row's test: over training seeds, or over items with one seed a side)", fontsize=11)
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return len(grouped)
