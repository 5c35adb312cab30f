"""The power DG12x5's rule expected: DG12's verdicts at n training seeds, simulated from its 36 measured runs.

    .venv/bin/python leaderboards/smol-pilot/dg12x5/power_simulation.py 3,5 200    # seed counts, draws

Truth for a data seed = its arm means (../dg12/per_run.csv). Each simulated training seed scores
Normal(arm mean, SD) with the arm's seed-to-seed SD pooled over data seeds 0-2, realised as that many Bernoulli
items; the seed model's items are Bernoulli at its score (../dg12/table3*.md). Each simulated grid is tested with
the product's own compare_scores and Holm over the benchmark's 8 comparisons, and two simulated data seeds'
verdicts are compared as `semibench verdicts --against` does. What it cannot know: a data seed whose spread is
larger than data seeds 0-2's (data seed 3's was; docs/pilot.md).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from semibench.stats import adjust_p_values, compare_scores

RUNS = pd.read_csv(Path(__file__).parent.parent / "dg12" / "per_run.csv", dtype={"s": str})
RUNS["arm"] = RUNS.objective + "-s" + RUNS.s
SEED_MODEL = {"math_heldout": {0: 14.3, 1: 18.7, 2: 18.0}, "if_heldout": {0: 40.6, 1: 38.3, 2: 39.3}}
N_ITEMS = {"math_heldout": 300, "if_heldout": 1000}
ARMS = ["group_dpo-sinf", "group_dpo-s4", "group_dpo-s1", "grpo-s1"]
# The grid's family on one benchmark: every arm against the seed model, the GroupDPO regimes, GRPO vs online.
PAIRS = [(a, "seed") for a in ARMS] + [("group_dpo-s4", "group_dpo-sinf"), ("group_dpo-s1", "group_dpo-sinf"),
                                        ("group_dpo-s1", "group_dpo-s4"), ("grpo-s1", "group_dpo-s1")]
rng = np.random.default_rng(0)


def simulated_verdicts(bench: str, data_seed: int, seeds: int) -> tuple[list[int], list[float]]:
    """One simulated grid on one benchmark: each comparison's verdict (+1, -1, 0 unresolved) and MDE."""
    mean = RUNS[RUNS.data_seed == data_seed].groupby("arm")[bench].mean()
    sd = RUNS.groupby(["arm", "data_seed"])[bench].var().groupby("arm").mean() ** 0.5
    n_items = N_ITEMS[bench]
    sides = {"seed": rng.binomial(1, SEED_MODEL[bench][data_seed] / 100, n_items).astype(float)[None, :, None]}
    for arm in ARMS:
        rates = np.clip(rng.normal(mean[arm], sd[arm], seeds), 0, 100) / 100
        sides[arm] = np.stack([rng.binomial(1, p, n_items) for p in rates]).astype(float)[:, :, None]  # [seeds, items, 1]
    results = [compare_scores(sides[a], sides[b], untrained=(a == "seed", b == "seed")) for a, b in PAIRS]
    adjusted = adjust_p_values([r["p_value"] for r in results])
    return [int(p < 0.05) * int(np.sign(r["delta"])) for r, p in zip(results, adjusted, strict=True)], [r["mde"] for r in results]


def main(seed_counts: list[int], draws: int) -> None:
    for seeds in seed_counts:
        for first, second in [(0, 1), (0, 2), (1, 2)]:
            v1, v2 = [], []
            for _ in range(draws):
                v1.append(sum((simulated_verdicts(b, first, seeds)[0] for b in N_ITEMS), []))
                v2.append(sum((simulated_verdicts(b, second, seeds)[0] for b in N_ITEMS), []))
            v1, v2 = np.array(v1), np.array(v2)
            resolved = (v1 != 0).sum(1)
            kept = np.where(resolved > 0, ((v1 != 0) & (v1 == v2)).sum(1) / np.maximum(resolved, 1), np.nan)
            online_math = ((v1[:, 2] != 0) & (v1[:, 3] != 0)).mean()  # math first (columns 0-7): online GroupDPO, GRPO
            print(f"{seeds} seeds, data seed {first} -> {second}: P(both online math controls resolve) {online_math:.2f}; "
                  f"controls resolved {resolved.mean():.1f}; share kept {np.nanmean(kept):.2f}; "
                  f"P(kept >= 80%) {np.nanmean(kept >= 0.8):.2f}; P(any flip) {((v1 != 0) & (v2 == -v1)).any(1).mean():.3f}")


if __name__ == "__main__":
    main([int(x) for x in sys.argv[1].split(",")], int(sys.argv[2]))
