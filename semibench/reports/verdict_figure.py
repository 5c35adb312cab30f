"""The verdicts as a forest plot: `verdicts.png` beside `verdicts.md` and `.csv`.

One panel per family (a task's benchmark, the comparisons Holm adjusts together), one row per
comparison: A − B in points with its 95% CI, filled when resolved after Holm, hollow when not. The
grey band is ± the comparison's MDE (80% power at the unadjusted alpha), so a hollow marker inside a
narrow band says "the arms are within that many points" and one inside a wide band says "this grid
cannot tell". The numbers the figure draws are printed beside each row, and the CSV beside it holds
them all. Reads verdict rows only (`verdicts.verdict_rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.runs import atomic_path
from semibench.stats import short_test_name

RESOLVED_COLOR = "tab:blue"
UNRESOLVED_COLOR = "0.35"


def families(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The tested rows grouped by (task, benchmark), in the order the table lists them; rows with no test
    (different items on the two sides) are left out."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if "delta" in r:
            out.setdefault((r["task"], r["benchmark"]), []).append(r)
    return out


def row_text(r: dict[str, Any]) -> str:
    """The numbers drawn for one comparison: A − B [95% CI], p (Holm), MDE, and its test."""
    p = r.get("p_adjusted", r.get("p_value", float("nan")))
    p_text = "no test" if p != p else f"p(Holm) {p:.2g}"
    return (f"{r['delta']:+.1f} [{r['ci_lower']:+.1f}, {r['ci_upper']:+.1f}]  {p_text}  MDE {r['mde']:.1f}  "
            f"{short_test_name(r.get('method', ''))}")


def draw_verdicts(rows: list[dict[str, Any]], path: Path) -> bool:
    """Write the forest plot of `rows` to `path` (PNG); False when no row was tested."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = families(rows)
    if not grouped:
        return False
    heights = [len(g) for g in grouped.values()]
    fig, axes = plt.subplots(len(grouped), 1, figsize=(13, 0.42 * sum(heights) + 1.1 * len(grouped) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, ((task, bench), family) in zip(axes[:, 0], grouped.items()):
        ys = range(len(family))[::-1]  # the table's first row on top
        for y, r in zip(ys, family):
            resolved = r["verdict"] != "not resolved"
            color = RESOLVED_COLOR if resolved else UNRESOLVED_COLOR
            if r["mde"] == r["mde"]:
                ax.fill_betweenx([y - 0.32, y + 0.32], -r["mde"], r["mde"], color="0.88", lw=0)
            ax.plot([r["ci_lower"], r["ci_upper"]], [y, y], color=color, lw=1.6)
            ax.plot(r["delta"], y, "o", ms=6, color=color, mfc=color if resolved else "white")
            ax.annotate(row_text(r), (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8, family="monospace")
        ax.axvline(0, color="0.2", lw=0.8)
        ax.set_yticks(list(ys), [f"{r['a']} vs {r['b']}" for r in family], fontsize=8)
        ax.set_ylim(-0.6, len(family) - 0.4)
        ax.set_title(f"{bench}, task {task}: Holm over {family[0].get('family_size', len(family))}", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("A − B [points]: dot the estimate, line its 95% CI, grey ± the MDE; filled = resolved after Holm")
    fig.suptitle("Verdicts (uncertainty as each row's test: over training seeds, or over items with one seed a side)", fontsize=11)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return True
