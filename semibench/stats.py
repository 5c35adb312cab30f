"""Paired, seed-aware comparison of two sets of per-item scores: pure statistics, no I/O (like losses.py).

    compare_scores(a, b, *, seed=0) -> {delta, ci_lower, ci_upper, p_value, mde, n_items, n_seeds, ...}

`a` and `b` are per-item scores in [0, 1], aligned by item: [items, samples] for one training seed,
or [training seeds, items, samples]. Everything returned is in points (x 100).

- One training seed per side: the per-item difference of the item means (samples averaged first),
  a paired bootstrap CI over items (`scipy.stats.bootstrap`, BCa, seeded), the paired t-test's
  p-value (`scipy.stats.ttest_rel`), and, when both sides have one binary sample per item, the exact
  McNemar test (`statsmodels`).
- Several training seeds: a two-level bootstrap, items then seeds. scipy resamples the items (paired
  across the sides) and the statistic resamples each side's seeds, so seed-to-seed variance widens
  the CI; the p-value is the bootstrap's two-sided share of resampled deltas across 0.
- `mde`: the minimum detectable effect at 80% power and alpha 0.05 for this many items, from
  `statsmodels`' paired t-test power solved for the effect size, times the per-item difference SD.

Why items, not sampling seeds: which problems were drawn is the larger part of the uncertainty; the
spread over sampling seeds alone (what the paper printed) is much smaller and leaves it out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.8


class ItemMismatch(ValueError):
    """The two sides were not scored on the same items: nothing can be paired."""


def as_seeds_items_samples(scores: Any, name: str) -> np.ndarray:
    """[items, samples] or [seeds, items, samples] -> float [seeds, items, samples], checked."""
    array = np.asarray(scores, dtype=float)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"{name}: expected per-item scores shaped [items, samples] or [seeds, items, samples], got shape {np.shape(scores)}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: scores must be finite and in [0, 1]")
    return array


def se_items(scores: Any) -> float:
    """The standard error over items, in points: samples averaged per item first (seeds too)."""
    from scipy import stats

    per_item = as_seeds_items_samples(scores, "scores").mean(axis=(0, 2))
    return 100 * float(stats.sem(per_item)) if len(per_item) > 1 else float("nan")


def item_summary(scores: Any, confidence: float = 0.95) -> dict[str, float | None]:
    """One result's uncertainty, in points, from its per-item scores [items, samples] in [0, 1]:

    - `se_items`: the SE over items of the item means (samples averaged first), and its t-interval
      `ci_items` (`scipy.stats.t`): the uncertainty of which items were drawn, the larger part;
    - `sd_seeds`: the SD over sampling seeds of the per-seed scores (sample j of every item is seed j),
      None with one sample per item: the spread the paper's avg@N parentheses came from.
    """
    from scipy import stats

    array = as_seeds_items_samples(scores, "scores")[0]
    per_item = array.mean(axis=1)
    n_items, n_samples = array.shape
    mean = float(per_item.mean())
    if n_items < 2:  # no spread to measure
        se, ci = None, None
    else:
        se = float(stats.sem(per_item))
        # Every item scored alike (often 0 for a weak model): the interval is the point, not NaN.
        ci = [mean, mean] if se == 0 else [float(x) for x in stats.t.interval(confidence, n_items - 1, loc=mean, scale=se)]
    sd_seeds = float(np.std(array.mean(axis=0), ddof=1)) if n_samples > 1 else None
    return {"score": 100 * mean, "se_items": None if se is None else 100 * se, "ci_items": None if ci is None else [100 * x for x in ci],
            "sd_seeds": None if sd_seeds is None else 100 * sd_seeds, "n_items": n_items, "n_samples": n_samples}


def compare_scores(a: Any, b: Any, *, seed: int = 0, n_resamples: int = 2000, confidence: float = 0.95) -> dict[str, Any]:
    """A - B in points with its CI, p-value and minimum detectable effect (module docstring)."""
    from scipy import stats
    from statsmodels.stats.power import TTestPower

    a, b = as_seeds_items_samples(a, "a"), as_seeds_items_samples(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ItemMismatch(f"the sides scored different item sets ({a.shape[1]} vs {b.shape[1]} items); compare runs evaluated on the same items")
    n_items = a.shape[1]
    item_a, item_b = a.mean(axis=2), b.mean(axis=2)  # [seeds, items]: each item's samples averaged
    diffs = item_a.mean(axis=0) - item_b.mean(axis=0)  # per item, over seeds
    delta = 100 * float(diffs.mean())
    rng = np.random.default_rng(seed)
    sd = float(diffs.std(ddof=1)) if n_items > 1 else 0.0
    effect_size = TTestPower().solve_power(nobs=n_items, alpha=ALPHA, power=POWER, alternative="two-sided") if n_items > 1 else float("nan")
    mde = 100 * sd * float(np.asarray(effect_size).reshape(-1)[0])  # statsmodels answers with a 1-element array
    out: dict[str, Any] = {"delta": delta, "mde": mde, "n_items": n_items, "n_seeds": (a.shape[0], b.shape[0]), "confidence": confidence}

    if n_items < 2:
        return out | {"ci_lower": float("nan"), "ci_upper": float("nan"), "p_value": float("nan"), "method": "one item: no uncertainty"}
    if a.shape[0] == 1 and b.shape[0] == 1:
        if sd == 0:  # every item moved by the same amount (e.g. identical sides): the interval is that point
            ci = (delta, delta)
            p_value = 1.0 if delta == 0 else 0.0
        else:
            boot = stats.bootstrap((diffs,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="BCa", random_state=rng)
            ci = (100 * float(boot.confidence_interval.low), 100 * float(boot.confidence_interval.high))
            p_value = float(stats.ttest_rel(item_a[0], item_b[0]).pvalue)
        out |= {"ci_lower": ci[0], "ci_upper": ci[1], "p_value": p_value, "method": "paired bootstrap over items (BCa); paired t-test"}
        if a.shape[2] == 1 and b.shape[2] == 1 and np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all():
            out |= mcnemar(a[0, :, 0], b[0, :, 0])
        return out

    # Two levels: scipy resamples the items (the same items for both sides: paired); the statistic
    # then resamples each side's training seeds, so between-seed variance enters the interval.
    seed_rng = np.random.default_rng(rng.integers(1 << 32))

    def statistic(items: np.ndarray, axis: int = -1) -> np.ndarray:
        items = np.asarray(items, dtype=int)
        seeds_a = seed_rng.integers(0, item_a.shape[0], size=(*items.shape[:-1], item_a.shape[0]))
        seeds_b = seed_rng.integers(0, item_b.shape[0], size=(*items.shape[:-1], item_b.shape[0]))
        mean_a = item_a[seeds_a[..., :, None], items[..., None, :]].mean(axis=(-2, -1))
        mean_b = item_b[seeds_b[..., :, None], items[..., None, :]].mean(axis=(-2, -1))
        return mean_a - mean_b

    boot = stats.bootstrap((np.arange(n_items),), statistic, n_resamples=n_resamples, confidence_level=confidence,
                           method="percentile", random_state=rng, vectorized=True)
    resampled = boot.bootstrap_distribution
    p_value = float(min(1.0, 2 * min((resampled <= 0).mean(), (resampled >= 0).mean())))
    return out | {"ci_lower": 100 * float(boot.confidence_interval.low), "ci_upper": 100 * float(boot.confidence_interval.high),
                  "p_value": p_value, "method": "two-level bootstrap, items (paired) then training seeds (percentile)"}


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of paired binary outcomes (statsmodels): the discordant items decide."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    table = [[int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
             [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())]]
    result = sm_mcnemar(table, exact=True)
    return {"mcnemar_p_value": float(result.pvalue), "mcnemar_table": table}


def verdict(result: dict[str, Any], a_name: str = "A", b_name: str = "B") -> str:
    """"A better", "B better" or "not resolved": the CI must exclude 0."""
    if result["ci_lower"] > 0:
        return f"{a_name} better"
    if result["ci_upper"] < 0:
        return f"{b_name} better"
    return "not resolved"
