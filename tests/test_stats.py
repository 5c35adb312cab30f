"""semibench.stats: paired, seed-aware comparisons, checked by hand, against scipy/statsmodels and by simulation."""

import numpy as np
import pytest
from scipy import stats as sps

from semibench.stats import ItemMismatch, compare_scores, mcnemar, se_items, verdict


def test_hand_computed_paired_binary_case_and_exact_mcnemar():
    a = [[1], [1], [0], [1], [1]]
    b = [[0], [1], [0], [0], [1]]
    r = compare_scores(a, b)
    assert r["delta"] == pytest.approx(40.0)  # 4/5 - 2/5
    assert r["n_items"] == 5 and r["n_seeds"] == (1, 1)
    # Two discordant items, both for A: the exact two-sided binomial p is 2 * 0.5^2 = 0.5.
    assert r["mcnemar_table"] == [[2, 2], [0, 1]]
    assert r["mcnemar_p_value"] == pytest.approx(0.5)
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    assert r["mcnemar_p_value"] == pytest.approx(sm_mcnemar([[2, 2], [0, 1]], exact=True).pvalue)
    # The p-value is the paired t-test's on the item differences [1, 0, 0, 1, 0].
    assert r["p_value"] == pytest.approx(sps.ttest_1samp([1, 0, 0, 1, 0], 0).pvalue)


def test_samples_are_averaged_per_item_before_the_difference():
    a = [[1, 0, 1, 1], [0, 0, 0, 1]]  # item means 0.75, 0.25
    b = [[0, 0, 1, 0], [0, 0, 0, 0]]  # item means 0.25, 0.00
    r = compare_scores(a, b)
    assert r["delta"] == pytest.approx(100 * ((0.75 - 0.25) + (0.25 - 0.0)) / 2)
    assert "mcnemar_p_value" not in r  # several samples per item: McNemar does not apply


def test_identical_inputs_give_zero_with_a_ci_containing_it():
    rng = np.random.default_rng(0)
    scores = (rng.random((60, 4)) < 0.3).astype(float)
    r = compare_scores(scores, scores)
    assert r["delta"] == 0.0 and r["ci_lower"] <= 0.0 <= r["ci_upper"] and r["p_value"] == 1.0
    assert verdict(r) == "not resolved"


def test_bootstrap_ci_agrees_with_the_analytic_paired_t_interval():
    rng = np.random.default_rng(1)
    base = rng.random(300)
    a = np.clip(base + rng.normal(0.05, 0.1, 300), 0, 1)[:, None]
    b = base[:, None]
    r = compare_scores(a, b, seed=3)
    d = 100 * (a[:, 0] - b[:, 0])
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    half = (high - low) / 2
    assert abs(r["ci_lower"] - low) < 0.1 * half and abs(r["ci_upper"] - high) < 0.1 * half


def test_coverage_of_the_95_percent_interval_on_a_known_effect():
    """400 synthetic comparisons with a true effect of +10 points: the 95% CI covers it 93-97% of the time."""
    rng = np.random.default_rng(7)
    effect, n_items, n_samples, reps = 0.10, 120, 4, 400
    covered = 0
    for rep in range(reps):
        p_b = rng.uniform(0.1, 0.8, n_items)  # each replication draws its own items
        a = (rng.random((n_items, n_samples)) < (p_b + effect)[:, None]).astype(float)
        b = (rng.random((n_items, n_samples)) < p_b[:, None]).astype(float)
        r = compare_scores(a, b, seed=rep, n_resamples=999)
        covered += r["ci_lower"] <= 100 * effect <= r["ci_upper"]
    assert 0.93 <= covered / reps <= 0.97, covered / reps


def test_the_two_level_bootstrap_widens_with_between_seed_variance():
    rng = np.random.default_rng(2)
    n_seeds, n_items, n_samples = 3, 80, 4
    p = rng.uniform(0.2, 0.6, n_items)
    b = (rng.random((n_seeds, n_items, n_samples)) < p[None, :, None]).astype(float)
    same = (rng.random((n_seeds, n_items, n_samples)) < (p + 0.05)[None, :, None]).astype(float)
    shifts = np.array([-0.15, 0.05, 0.25])[:, None, None]  # training seeds that land far apart
    spread = (rng.random((n_seeds, n_items, n_samples)) < np.clip(p[None, :, None] + shifts, 0, 1)).astype(float)
    narrow, wide = compare_scores(same, b), compare_scores(spread, b)
    assert narrow["n_seeds"] == (3, 3) and "two-level" in wide["method"]
    assert (wide["ci_upper"] - wide["ci_lower"]) > 1.5 * (narrow["ci_upper"] - narrow["ci_lower"])


def test_mismatched_item_sets_are_refused():
    with pytest.raises(ItemMismatch, match="different item sets"):
        compare_scores(np.zeros((40, 4)), np.zeros((41, 4)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        compare_scores([[2.0]], [[1.0]])


def test_minimum_detectable_effect_shrinks_with_items_as_the_t_test_power_says():
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(4)
    a = (rng.random((400, 1)) < 0.5).astype(float)
    b = (rng.random((400, 1)) < 0.5).astype(float)
    r = compare_scores(a, b)
    d = a[:, 0] - b[:, 0]
    assert r["mde"] == pytest.approx(100 * d.std(ddof=1) * TTestPower().solve_power(nobs=400, alpha=0.05, power=0.8))
    assert compare_scores(a[:100], b[:100])["mde"] > 1.8 * r["mde"]  # ~ 1/sqrt(n): 4x fewer items, ~2x the MDE


def test_se_items_and_verdicts():
    assert se_items([[1.0], [0.0], [1.0], [0.0]]) == pytest.approx(100 * sps.sem([1, 0, 1, 0]))
    assert verdict({"ci_lower": 1.0, "ci_upper": 5.0}, "online", "offline") == "online better"
    assert verdict({"ci_lower": -5.0, "ci_upper": -1.0}, "online", "offline") == "offline better"
    assert mcnemar(np.array([1, 0]), np.array([1, 0]))["mcnemar_p_value"] == pytest.approx(1.0)


def test_item_summary_hand_computed():
    """Item means [0.5, 1, 0, 0.5]: mean 50, SD 0.408, SE over items 20.41; per-seed scores 75 and 25: SD 35.36."""
    from scipy import stats as scipy_stats

    from semibench.stats import item_summary

    out = item_summary([[1, 0], [1, 1], [0, 0], [1, 0]])
    assert out["score"] == pytest.approx(50.0) and out["se_items"] == pytest.approx(100 * (1 / 6) ** 0.5 / 2)
    assert out["sd_seeds"] == pytest.approx(100 * 0.5 ** 0.5 / 2 * 1.0)
    half = scipy_stats.t.ppf(0.975, 3) * out["se_items"]
    assert out["ci_items"] == pytest.approx([50 - half, 50 + half])
    assert item_summary([[1], [0], [1]])["sd_seeds"] is None  # one sample per item: no spread over seeds
