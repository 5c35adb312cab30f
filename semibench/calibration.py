"""How often `stats.compare_scores` is wrong, by simulation: the false-"better" rate under a null and
the coverage of its interval under a true effect, for a number of training seeds per side.

    simulate(seeds_a=3, seeds_b=3, effect_points=0, seed_sd_points=4) -> {false_better, coverage, ...}
    simulate(3, 3, seed_correlation=0.9, paired=True)  # arms that share training seeds, tested paired

The model is the default grid's held-out math: `n_items` items with solve rates drawn from
U(2%, 30%), one binary sample per item, and every training seed shifting its arm's rates by
N(0, seed_sd) (what one training trajectory does to a 135M model: see docs/verdicts.md). Both arms
are scored on the same items; A's rates are B's plus `effect`. A side with `seeds = 0` is the
untrained seed model: no seed shift. `seed_correlation` is the correlation of the two arms' shifts at
the same training seed (a grid's arms share their seeds: docs/verdicts.md), and `paired` tests them
paired over seeds instead of Welch. `semibench bench verdicts` prints the table; tests assert it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semibench.stats import compare_scores


def _arm(rng: np.random.Generator, rates: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """[seeds, items, 1] binary scores, one row of rates per training seed's shift."""
    p = np.clip(rates[None, :] + shifts[:, None], 0.0, 1.0)
    return (rng.random(p.shape) < p).astype(float)[..., None]


def _shifts(rng: np.random.Generator, seeds_a: int, seeds_b: int, seed_sd: float, correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """Each side's per-seed shifts; seed k of A correlates `correlation` with seed k of B (0 seeds: no shift)."""
    shared = rng.normal(0.0, seed_sd, max(seeds_a, seeds_b, 1))
    own = rng.normal(0.0, seed_sd, max(seeds_a, 1))
    b = shared[:max(seeds_b, 1)] if seeds_b else np.zeros(1)
    a = correlation * shared[:max(seeds_a, 1)] + np.sqrt(1 - correlation**2) * own if seeds_a else np.zeros(1)
    return a, b


def simulate(seeds_a: int, seeds_b: int, effect_points: float = 0.0, seed_sd_points: float = 4.0, n_items: int = 160,
             reps: int = 1000, seed: int = 0, seed_correlation: float = 0.0, paired: bool = False) -> dict[str, Any]:
    """Verdict rates over `reps` simulated comparisons (see the module docstring)."""
    if not -1 <= seed_correlation <= 1:
        raise ValueError(f"seed_correlation must lie in [-1, 1], got {seed_correlation}")
    rng = np.random.default_rng(seed)
    effect, seed_sd = effect_points / 100, seed_sd_points / 100
    better = unqualified_better = wrong_sign = covered = 0
    mdes = []
    for _ in range(reps):
        rates = rng.uniform(0.02, 0.30, n_items)
        shifts_a, shifts_b = _shifts(rng, seeds_a, seeds_b, seed_sd, seed_correlation)
        a = _arm(rng, np.clip(rates + effect, 0, 1), shifts_a)
        b = _arm(rng, rates, shifts_b)
        r = compare_scores(a, b, untrained=(seeds_a == 0, seeds_b == 0), paired_seeds=paired)
        mdes.append(r["mde"])
        resolved = r["verdict"] != "not resolved"
        better += resolved
        unqualified_better += resolved and "training seed" not in r["verdict"]
        wrong_sign += resolved and (r["delta"] > 0) != (effect > 0) if effect else 0
        covered += r["ci_lower"] <= effect_points <= r["ci_upper"]
    return {"seeds_a": seeds_a, "seeds_b": seeds_b, "effect_points": effect_points, "seed_sd_points": seed_sd_points, "n_items": n_items,
            "seed_correlation": seed_correlation, "paired": paired, "median_mde": float(np.nanmedian(mdes)),
            "reps": reps, "resolved": better / reps, "resolved_unqualified": unqualified_better / reps,
            "wrong_sign": wrong_sign / reps, "coverage": covered / reps}
