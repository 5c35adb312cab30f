"""How often `stats.compare_scores` is wrong, by simulation: the false-"better" rate under a null and
the coverage of its interval under a true effect, for a number of training seeds per side.

    simulate(seeds_a=3, seeds_b=3, effect_points=0, seed_sd_points=4) -> {false_better, coverage, ...}

The model is the default grid's held-out math: `n_items` items with solve rates drawn from
U(2%, 30%), one binary sample per item, and every training seed shifting its arm's rates by
N(0, seed_sd) (what one training trajectory does to a 135M model: see docs/verdicts.md). Both arms
are scored on the same items; A's rates are B's plus `effect`. A side with `seeds = 0` is the
untrained seed model: no seed shift. `semibench bench verdicts` prints the table; tests assert it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semibench.stats import compare_scores


def _arm(rng: np.random.Generator, rates: np.ndarray, seeds: int, seed_sd: float) -> np.ndarray:
    """[seeds, items, 1] binary scores; 0 seeds = one untrained score with no seed shift."""
    shifts = rng.normal(0.0, seed_sd, size=(max(seeds, 1), 1)) if seeds else np.zeros((1, 1))
    p = np.clip(rates[None, :] + shifts, 0.0, 1.0)
    return (rng.random(p.shape) < p).astype(float)[..., None]


def simulate(seeds_a: int, seeds_b: int, effect_points: float = 0.0, seed_sd_points: float = 4.0, n_items: int = 160,
             reps: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Verdict rates over `reps` simulated comparisons (see the module docstring)."""
    rng = np.random.default_rng(seed)
    effect, seed_sd = effect_points / 100, seed_sd_points / 100
    better = unqualified_better = wrong_sign = covered = 0
    for _ in range(reps):
        rates = rng.uniform(0.02, 0.30, n_items)
        a = _arm(rng, np.clip(rates + effect, 0, 1), seeds_a, seed_sd)
        b = _arm(rng, rates, seeds_b, seed_sd)
        r = compare_scores(a, b, untrained=(seeds_a == 0, seeds_b == 0))
        resolved = r["verdict"] != "not resolved"
        better += resolved
        unqualified_better += resolved and "training seed" not in r["verdict"]
        wrong_sign += resolved and (r["delta"] > 0) != (effect > 0) if effect else 0
        covered += r["ci_lower"] <= effect_points <= r["ci_upper"]
    return {"seeds_a": seeds_a, "seeds_b": seeds_b, "effect_points": effect_points, "seed_sd_points": seed_sd_points, "n_items": n_items,
            "reps": reps, "resolved": better / reps, "resolved_unqualified": unqualified_better / reps,
            "wrong_sign": wrong_sign / reps, "coverage": covered / reps}
