"""The published default grid's verdicts under the paired rule (docs/verdicts.md#shared-training-seeds-the-regime-comparisons-are-paired).

    .venv/bin/python leaderboards/smol-grid/reanalyse_paired.py > leaderboards/smol-grid/verdicts_paired.md

The grids were published with Welch between arms. The paired test needs only each arm's per-seed scores, which
table3*.csv keeps (one row per training seed), so the regime comparisons are re-tested here with the product's
`compare_scores(..., paired_seeds=True)`; the comparisons with the seed model keep their published Welch p.
Holm runs again over each benchmark's 8. What `semibench verdicts` would print on the same runs today.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from semibench.stats import adjust_p_values, compare_scores

HERE = Path(__file__).parent
COLUMN = {"math_heldout": "Held-out math", "if_heldout": "Held-out IF (verifiable)"}


def per_seed(table3: pd.DataFrame, arm: str, bench: str) -> pd.Series:
    rows = table3[table3.method.str.removesuffix(" on mixed") == arm]
    return rows.set_index("seed")[COLUMN[bench]].sort_index() / 100


def reanalyse(suffix: str) -> list[str]:
    table3 = pd.read_csv(HERE / f"table3{suffix}.csv")
    table3 = table3[table3.run_id.str.contains(r"-seed\d+-")].assign(seed=lambda t: t.run_id.str.extract(r"-seed(\d+)-")[0].astype(int))
    published = pd.read_csv(HERE / f"verdicts{suffix}.csv")
    lines = []
    for bench, family in published.groupby("benchmark", sort=False):
        tests = []
        for row in family.itertuples():
            if row.b.startswith("Seed"):
                tests.append((row, None))
                continue
            a, b = per_seed(table3, row.a, bench), per_seed(table3, row.b, bench)
            assert list(a.index) == list(b.index), "the arms must share their training seeds"
            paired = compare_scores(a.to_numpy()[:, None, None], b.to_numpy()[:, None, None], paired_seeds=True)
            tests.append((row, paired | {"r": float(np.corrcoef(a, b)[0, 1])}))
        adjusted = adjust_p_values([t["p_value"] if t else row.p_value for row, t in tests])
        for (row, t), p_holm in zip(tests, adjusted, strict=True):
            if t is None:
                continue
            resolved = p_holm < 0.05 and (t["ci_lower"] > 0 or t["ci_upper"] < 0)
            lines.append(f"| {suffix.strip('_') or 'data_seed0'} | {bench} | {row.a} | {row.b} | {t['delta']:+.2f} | [{t['ci_lower']:+.2f}, "
                         f"{t['ci_upper']:+.2f}] | {t['r']:+.2f} | {t['p_value']:.3g} | {p_holm:.3g} | {t['mde']:.2f} | "
                         f"{row.p_value:.3g} / {row.mde:.2f} | {'A better' if resolved and t['delta'] > 0 else 'B better' if resolved else 'not resolved'} | {row.verdict} |")
    return lines


def main() -> None:
    print("### The default grid's regime comparisons, paired over the shared training seeds\n")
    print("| grid | benchmark | A | B | A − B | 95% CI (paired) | r over seeds | p | p (Holm) | MDE | published Welch p / MDE | verdict | published verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for suffix in ("", "_data_seed1"):
        print("\n".join(reanalyse(suffix)))
    print("\nPoints (x 100). Uncertainty: seed-to-seed, as the paired t-test over the 3 training seeds the arms share sees it "
          "(scipy ttest_rel on the per-seed scores of table3*.csv, its t-interval, df 2); p (Holm) over each benchmark's 8 "
          "comparisons, the 4 against the seed model keeping their published (Welch) p. MDE: 80% power, alpha 0.05.")


if __name__ == "__main__":
    main()
