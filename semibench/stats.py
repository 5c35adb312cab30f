"""Paired, seed-aware comparison of two sets of per-item scores: pure statistics, no I/O (like losses.py).

    compare_scores(a, b, *, seed=0) -> {delta, ci_lower, ci_upper, p_value, verdict, mde, n_items, n_seeds, ...}
    adjust_p_values(p_values, method="holm") -> the family-wise adjusted p-values (statsmodels)

`a` and `b` are per-item scores in [0, 1], aligned by item: [items, samples] for one training seed,
or [training seeds, items, samples]. Everything returned is in points (x 100).

**One rule decides.** Every comparison is one test whose p-value and interval come from the same
inversion, so "resolved" (p < alpha) and "the CI excludes 0" are the same statement:

- one seed a side, one binary sample per item: the exact McNemar test (statsmodels) and the matching
  exact interval: Clopper-Pearson for the share of discordant items won by A (scipy `binomtest`),
  mapped to the paired difference, conditional on the number of discordant items. Both invert the
  same equal-tailed binomial test, so they cannot disagree (a bootstrap of 3 discordant items can);
- one seed a side, otherwise: the paired t-test over items and its t-interval (scipy `ttest_rel`);
- two trained sides that ran the same training seeds (`paired_seeds=True`, seeds aligned by the
  caller): the paired t-test over training seeds on the per-seed scores (scipy `ttest_rel`) and its
  t-interval. A grid gives every arm the same seeds, and a seed fixes the prompt order, the
  generator's seed and the pairs' draw, so the two arms' scores at one seed are not independent: the
  seed is a block, and the paired test is valid whatever the sign of the within-seed correlation;
- a trained side with several training seeds otherwise: Welch's t-test (scipy `ttest_ind`, unequal
  variances) on the per-seed scores, so seed-to-seed variance is the variance the interval carries.
  The other side, if it has a single score (the untrained seed model, or a run with one seed), enters
  with its item-level standard error: its items are its observations.

Coverage and the false-"better" rate of each path are measured by simulation in tests/test_stats.py
and reported in docs/verdicts.md. A trained side with fewer than 2 training seeds cannot measure
seed-to-seed variance; the verdict then says so ("A better (1 training seed)"), because one seed can
decide a comparison on its own (a null with a 4-point seed shift gives ~28% false "better" 1 vs 1).

`mde`: the minimum detectable effect at 80% power and the same alpha, from statsmodels' t-test
power at the test's degrees of freedom, times the test's standard error of the difference; with
several seeds it includes their variance.

`seed_var`, `fixed_var` (points², seed-aware tests only): the variance of the difference that
shrinks with more training seeds (per seed, both sides' seeds) and the part that does not (a
single-score side's items); `seeds_for_mde` turns them into the training seeds a side needs for
the MDE to reach a target: what a pilot grid says the real one needs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 2  # training seeds a trained side needs before seed-to-seed variance is measured


class ItemMismatch(ValueError):
    """The two sides were not scored on the same items: nothing can be paired."""


def as_seeds_items_samples(scores: Any, name: str) -> np.ndarray:
    """[items, samples] or [seeds, items, samples] -> float [seeds, items, samples], checked."""
    try:
        array = np.asarray(scores, dtype=float)
    except ValueError:  # ragged: seeds or items with different numbers of samples
        raise ValueError(f"{name}: every item needs the same number of samples in every seed; average them per item first") from None
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


def compare_scores(a: Any, b: Any, *, seed: int = 0, confidence: float = 0.95, untrained: tuple[bool, bool] = (False, False),
                   paired_seeds: bool = False) -> dict[str, Any]:
    """A - B in points: one test's CI and p-value, its verdict, and the minimum detectable effect (module docstring).

    `untrained` marks a side that is not a training run (the seed model): it has no training-seed
    variance to measure, so one score of it does not qualify the verdict. `paired_seeds` says that
    seed k of A and seed k of B are the same training seed (the caller aligned them), so the test is
    paired over seeds. `seed` is kept for callers; every method here is exact or analytic, so the
    result does not depend on it.
    """
    del seed
    a, b = as_seeds_items_samples(a, "a"), as_seeds_items_samples(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ItemMismatch(f"the sides scored different item sets ({a.shape[1]} vs {b.shape[1]} items); compare runs evaluated on the same items")
    if paired_seeds and (any(untrained) or a.shape[0] != b.shape[0] or a.shape[0] < MIN_SEEDS):
        raise ValueError(f"paired_seeds needs two trained sides with the same {MIN_SEEDS} or more training seeds, got {a.shape[0]} and {b.shape[0]}")
    n_items = a.shape[1]
    item_a, item_b = a.mean(axis=2), b.mean(axis=2)  # [seeds, items]: each item's samples averaged
    delta = 100 * float(item_a.mean() - item_b.mean())
    alpha = 1 - confidence
    trained_seeds = [k for k, fixed in zip((a.shape[0], b.shape[0]), untrained) if not fixed]
    out: dict[str, Any] = {"delta": delta, "n_items": n_items, "n_seeds": (a.shape[0], b.shape[0]), "confidence": confidence, "alpha": alpha,
                           "min_training_seeds": min(trained_seeds) if trained_seeds else None}

    if n_items < 2 and max(a.shape[0], b.shape[0]) < 2:
        test = {"ci_lower": float("nan"), "ci_upper": float("nan"), "p_value": float("nan"), "mde": float("nan"), "method": "one item: no uncertainty"}
    elif a.shape[0] == 1 and b.shape[0] == 1:
        binary = a.shape[2] == b.shape[2] == 1 and np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()
        test = _mcnemar_exact(a[0, :, 0], b[0, :, 0], confidence) if binary else _paired_t(item_a[0], item_b[0], confidence)
    elif paired_seeds:
        per_seed_a, per_seed_b = item_a.mean(axis=1), item_b.mean(axis=1)
        test = _paired_t(per_seed_a, per_seed_b, confidence, over="training seeds (per-seed scores)")
        test |= {"seed_var": float((100 * (per_seed_a - per_seed_b)).var(ddof=1)), "fixed_var": 0.0}
    else:
        test = _welch(item_a, item_b, confidence)
        # Each side's variance per observation: per seed where it has seeds (shrinks with more), else per item (fixed).
        parts = [(float((100 * (x.mean(axis=1) if x.shape[0] > 1 else x[0])).var(ddof=1)), x.shape[0] > 1, x.shape[1]) for x in (item_a, item_b)]
        test |= {"seed_var": sum(v for v, seeded, _ in parts if seeded), "fixed_var": sum(v / n for v, seeded, n in parts if not seeded)}
    out |= test
    return out | {"verdict": verdict(out)}


def _paired_t(a: np.ndarray, b: np.ndarray, confidence: float, over: str = "items") -> dict[str, Any]:
    """The paired t-test and its own interval: over items (one seed a side, scores not binary) or over
    shared training seeds (`a`, `b` the per-seed scores, seed k of each the same seed)."""
    from scipy import stats

    diffs = a - b
    n = len(diffs)
    sd = float(diffs.std(ddof=1))
    mde = _mde(100 * sd / math.sqrt(n), n - 1, 1 - confidence)
    method = f"paired t-test over {over} (scipy ttest_rel) and its t-interval"
    # Every item (seed) moved by the same amount, e.g. identical sides or +6/60 at every seed: no variance, so the
    # point is the interval. A tolerance, not sd == 0: per-seed means that are equal on paper differ by ~1e-17,
    # and ttest_rel would turn that rounding into p ~ 1e-32.
    if np.ptp(diffs) <= 1e-12 * max(1.0, float(np.abs(diffs).max())):
        d = 100 * float(diffs.mean())
        return {"ci_lower": d, "ci_upper": d, "p_value": 1.0 if d == 0 else float("nan"), "mde": 0.0,
                "method": method + ("" if d == 0 else f"; every one of the {over} differs by the same amount: no variance, no test")}
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence_level=confidence)
    return {"ci_lower": 100 * float(ci.low), "ci_upper": 100 * float(ci.high), "p_value": float(result.pvalue), "mde": mde, "method": method}


def _mcnemar_exact(a: np.ndarray, b: np.ndarray, confidence: float) -> dict[str, Any]:
    """One binary sample per item: exact McNemar p and the Clopper-Pearson interval that inverts the same test.

    Given m discordant items, A wins k ~ Binomial(m, pi) of them and the paired difference is
    (m / n)(2 pi - 1). statsmodels' exact McNemar p doubles the smaller binomial tail at pi = 1/2;
    the Clopper-Pearson interval for pi is the set of pi that equal-tailed test keeps, so "p < alpha"
    and "the interval excludes 0" are one statement.
    """
    from scipy import stats

    result = mcnemar(a, b)
    n = len(a)
    a_only, b_only = result["mcnemar_table"][0][1], result["mcnemar_table"][1][0]
    m = a_only + b_only
    diffs = a.astype(float) - b.astype(float)
    mde = _mde(100 * float(diffs.std(ddof=1)) / math.sqrt(n), n - 1, 1 - confidence)
    method = "exact McNemar test (statsmodels) and its Clopper-Pearson interval over the discordant items"
    if m == 0:  # no item differs: the difference is exactly 0
        return result | {"ci_lower": 0.0, "ci_upper": 0.0, "p_value": 1.0, "mde": mde, "method": method}
    ci = stats.binomtest(a_only, m).proportion_ci(confidence_level=confidence, method="exact")
    to_points = lambda pi: 100 * (m / n) * (2 * float(pi) - 1)  # noqa: E731
    return result | {"ci_lower": to_points(ci.low), "ci_upper": to_points(ci.high), "p_value": result["mcnemar_p_value"], "mde": mde, "method": method}


def _welch(item_a: np.ndarray, item_b: np.ndarray, confidence: float) -> dict[str, Any]:
    """Several training seeds on a side: Welch's t-test on per-seed scores (a single-score side: its items)."""
    from scipy import stats

    def observations(items: np.ndarray) -> np.ndarray:  # [seeds, items] -> what the side's score varies over
        return items.mean(axis=1) if items.shape[0] > 1 else items[0]

    obs_a, obs_b = observations(item_a), observations(item_b)
    with warnings.catch_warnings():  # seeds that score alike: scipy warns of precision loss, the answer is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(obs_a, obs_b, equal_var=False)
    se = 100 * math.sqrt(obs_a.var(ddof=1) / len(obs_a) + obs_b.var(ddof=1) / len(obs_b))
    ci = result.confidence_interval(confidence_level=confidence)
    method = "Welch's t-test (scipy ttest_ind) on per-seed scores, with its t-interval"
    if not math.isfinite(float(result.pvalue)):  # no variance on either side (e.g. seeds that all score 0)
        d = 100 * float(obs_a.mean() - obs_b.mean())
        return {"ci_lower": d, "ci_upper": d, "p_value": 1.0 if d == 0 else float("nan"), "mde": 0.0, "method": method + "; no variance, no test"}
    return {"ci_lower": 100 * float(ci.low), "ci_upper": 100 * float(ci.high), "p_value": float(result.pvalue),
            "mde": _mde(se, float(result.df), 1 - confidence), "method": method}


def _mde(se_points: float, df: float, alpha: float) -> float:
    """The smallest true difference found with 80% power by a two-sided t-test with this standard error
    and degrees of freedom: statsmodels' one-sample t power at n = df + 1 gives the effect in SDs; one
    SD is se * sqrt(n)."""
    from statsmodels.stats.power import TTestPower

    if not (df >= 1 and math.isfinite(se_points)):
        return float("nan")
    nobs = df + 1
    effect = TTestPower().solve_power(nobs=nobs, alpha=alpha, power=POWER, alternative="two-sided")
    # statsmodels may answer with a 1-element array, and its root finder may land on the mirror root (-d), e.g. at nobs 73
    return abs(float(np.asarray(effect).reshape(-1)[0])) * se_points * math.sqrt(nobs)


def seeds_for_mde(target_points: float, seed_var: float, fixed_var: float = 0.0, alpha: float = ALPHA, max_seeds: int = 100) -> int | None:
    """The fewest training seeds a side for which a seed-aware test's MDE is at most `target_points`, with the
    difference's variance `seed_var / n + fixed_var` (points², as `compare_scores` returns them) at n - 1 degrees
    of freedom: exact for the paired test over seeds, conservative for Welch (whose degrees of freedom are at
    least n - 1). None when no number up to `max_seeds` reaches it (e.g. the seed model's items alone are too noisy)."""
    if not (math.isfinite(seed_var) and math.isfinite(fixed_var)):
        return None
    for n in range(MIN_SEEDS, max_seeds + 1):
        if _mde(math.sqrt(seed_var / n + fixed_var), n - 1, alpha) <= target_points:
            return n
    return None


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of paired binary outcomes (statsmodels): the discordant items decide."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    table = [[int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
             [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())]]
    result = sm_mcnemar(table, exact=True)
    return {"mcnemar_p_value": float(result.pvalue), "mcnemar_table": table}


def adjust_p_values(p_values: Any, method: str = "holm", alpha: float = ALPHA) -> list[float]:
    """Family-wise adjusted p-values (statsmodels `multipletests`): "holm" (step-down, controls the
    family-wise error rate) or "fdr_bh" (Benjamini-Hochberg, controls the false discovery rate).
    NaN p-values (no test) stay NaN and do not count toward the family."""
    from statsmodels.stats.multitest import multipletests

    if method not in ("holm", "fdr_bh"):
        raise ValueError(f"unknown p-value adjustment '{method}'; choose holm or fdr_bh")
    p = np.asarray(p_values, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    tested = np.isfinite(p)
    if tested.any():
        out[tested] = multipletests(p[tested], alpha=alpha, method=method)[1]
    return [float(x) for x in out]


def verdict(result: dict[str, Any], a_name: str = "A", b_name: str = "B") -> str:
    """"A better", "B better" or "not resolved": resolved when the deciding p-value (family-adjusted
    where there is one) is below alpha and the CI excludes 0 (the same statement for one test; both
    are checked). A resolved verdict with a trained side of fewer than 2 training seeds says so."""
    low, high = result["ci_lower"], result["ci_upper"]
    p = result.get("p_adjusted", result.get("p_value"))
    alpha = result.get("alpha", ALPHA)
    significant = p is None or (p == p and p < alpha)  # a bare CI (no p) decides by the CI alone, as before
    if not significant or not (low > 0 or high < 0):
        return "not resolved"
    text = f"{a_name} better" if low > 0 else f"{b_name} better"
    seeds = result.get("min_training_seeds")
    if seeds is not None and seeds < MIN_SEEDS:
        text += f" ({seeds} training seed{'s' if seeds != 1 else ''})"
    return text
