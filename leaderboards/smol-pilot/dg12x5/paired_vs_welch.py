"""Welch against the paired test over training seeds, on DG12x5's published runs (per_run.csv).

    .venv/bin/python leaderboards/smol-pilot/dg12x5/paired_vs_welch.py > leaderboards/smol-pilot/dg12x5/paired_vs_welch.md

For each data seed, benchmark and regime comparison: the correlation of the two arms' scores over the 5 shared
training seeds, each test's MDE with all 5 seeds, and, over the 10 ways to keep 3 of the 5 seeds (the default
grid's 3), each test's median MDE and how often it resolves the comparison (raw p < 0.05, no family: the share
is about the test, not the family). Both tests are the product's own (`semibench.stats.compare_scores`, with
and without `paired_seeds`), fed the per-seed scores. Real runs, not a model of them: what it cannot say is how
other designs' arms correlate.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from semibench.stats import compare_scores

RUNS = pd.read_csv(Path(__file__).parent / "per_run.csv", dtype={"s": str})
RUNS["arm"] = RUNS.objective + "-s" + RUNS.s
PAIRS = [("group_dpo-s4", "group_dpo-sinf"), ("group_dpo-s1", "group_dpo-sinf"), ("group_dpo-s1", "group_dpo-s4"), ("grpo-s1", "group_dpo-s1")]
LABEL = {"group_dpo-sinf": "offline", "group_dpo-s4": "semi-online", "group_dpo-s1": "online GroupDPO", "grpo-s1": "GRPO"}


def per_seed(data_seed: int, arm: str, bench: str) -> pd.Series:
    rows = RUNS[(RUNS.data_seed == data_seed) & (RUNS.arm == arm)]
    return rows.set_index("training_seed")[bench].sort_index() / 100


def test(a: np.ndarray, b: np.ndarray, paired: bool) -> dict:
    return compare_scores(a[:, None, None], b[:, None, None], paired_seeds=paired)  # [seeds, 1 item, 1 sample]: the per-seed scores


def main() -> None:
    print("| data seed | benchmark | A vs B | A − B (5 seeds) | r over seeds | MDE 5 seeds: Welch / paired | "
          "3 of 5 seeds: median MDE Welch / paired | 3 of 5: % resolved Welch / paired |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for data_seed, bench, (a_arm, b_arm) in itertools.product(sorted(RUNS.data_seed.unique()), ["math_heldout", "if_heldout"], PAIRS):
        a, b = per_seed(data_seed, a_arm, bench), per_seed(data_seed, b_arm, bench)
        assert list(a.index) == list(b.index), "the arms must share their training seeds"
        a, b = a.to_numpy(), b.to_numpy()
        full = {paired: test(a, b, paired) for paired in (False, True)}
        subsets = [list(k) for k in itertools.combinations(range(len(a)), 3)]
        sub = {paired: [test(a[k], b[k], paired) for k in subsets] for paired in (False, True)}
        mde = {paired: float(np.nanmedian([r["mde"] for r in sub[paired]])) for paired in (False, True)}
        hits = {paired: 100 * float(np.mean([r["p_value"] < 0.05 for r in sub[paired]])) for paired in (False, True)}
        ratios.append(mde[True] / mde[False])
        print(f"| {data_seed} | {bench} | {LABEL[a_arm]} vs {LABEL[b_arm]} | {full[False]['delta']:+.1f} | {np.corrcoef(a, b)[0, 1]:+.2f} | "
              f"{full[False]['mde']:.1f} / {full[True]['mde']:.1f} | {mde[False]:.1f} / {mde[True]:.1f} | {hits[False]:.0f} / {hits[True]:.0f} |")
    print(f"\nMDE in points (80% power, alpha 0.05, the test's own df); 'resolved': raw p < 0.05 over the 10 subsets. "
          f"Paired / Welch median MDE at 3 seeds, over the {len(ratios)} rows: median {np.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}; paired smaller in {sum(r < 1 for r in ratios)} of {len(ratios)}.")


if __name__ == "__main__":
    main()
