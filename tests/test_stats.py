"""semibench.stats: one test per verdict, checked by hand, against scipy/statsmodels and by simulation."""

import numpy as np
import pytest
from scipy import stats as sps

from semibench.stats import ItemMismatch, adjust_p_values, compare_scores, mcnemar, se_items, seeds_for_mde, verdict


def sparse_binary(a_only: int, n: int = 160, both: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A seed model solving `both` of n items and a run solving those plus `a_only` more: 1 sample each."""
    b = np.zeros((n, 1))
    b[:both] = 1
    a = b.copy()
    a[both:both + a_only] = 1
    return a, b


def test_hand_computed_paired_binary_case_is_the_exact_mcnemar_test():
    a = [[1], [1], [0], [1], [1]]
    b = [[0], [1], [0], [0], [1]]
    r = compare_scores(a, b)
    assert r["delta"] == pytest.approx(40.0)  # 4/5 - 2/5
    assert r["n_items"] == 5 and r["n_seeds"] == (1, 1)
    # Two discordant items, both for A: the exact two-sided binomial p is 2 * 0.5^2 = 0.5, and it decides.
    assert r["mcnemar_table"] == [[2, 2], [0, 1]]
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    assert r["p_value"] == r["mcnemar_p_value"] == pytest.approx(sm_mcnemar([[2, 2], [0, 1]], exact=True).pvalue) == pytest.approx(0.5)
    # Clopper-Pearson for 2 of 2 discordant won by A is [0.158, 1]: delta in [2/5 (2*0.158 - 1), 2/5] points x 100.
    low = sps.binomtest(2, 2).proportion_ci(0.95, method="exact").low
    assert r["ci_lower"] == pytest.approx(100 * 0.4 * (2 * low - 1)) and r["ci_upper"] == pytest.approx(40.0)
    assert r["verdict"] == "not resolved"


@pytest.mark.parametrize("a_only, resolved", [(3, False), (5, False), (14, True)])
def test_sparse_binary_items_resolve_only_when_the_exact_test_does(a_only, resolved):
    """160 items, the seed model at 4%: A alone solves 3, 5 or 14. A BCa bootstrap called 3 and 5 "A better"
    (CI [+0.63, +5.00], [+1.25, +6.88]) while exact McNemar gave p = 0.25 and 0.0625."""
    a, b = sparse_binary(a_only)
    r = compare_scores(a, b)
    assert r["p_value"] == pytest.approx(2 * 0.5 ** a_only if a_only < 20 else 0, abs=1e-12)
    assert (r["ci_lower"] > 0) == resolved and (r["p_value"] < 0.05) == resolved
    assert r["verdict"] == ("A better (1 training seed)" if resolved else "not resolved")
    assert compare_scores(a, b, untrained=(False, True))["verdict"] == r["verdict"]  # A is still one training seed
    assert compare_scores(a, b, untrained=(True, True))["verdict"] == ("A better" if resolved else "not resolved")


def test_p_value_and_interval_agree_on_every_path():
    """Resolved exactly when p < alpha and the CI excludes 0: the two never disagree, whatever the data."""
    rng = np.random.default_rng(11)
    disagreements = 0
    for rep in range(300):
        n, seeds_a, seeds_b, samples = int(rng.integers(8, 120)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.choice([1, 1, 3]))
        rate = rng.uniform(0.05, 0.6, n)
        a = (rng.random((seeds_a, n, samples)) < np.clip(rate + rng.normal(0.05, 0.05), 0, 1)[None, :, None]).astype(float)
        b = (rng.random((seeds_b, n, samples)) < rate[None, :, None]).astype(float)
        r = compare_scores(a, b)
        if np.isnan(r["p_value"]):
            continue
        disagreements += (r["p_value"] < 0.05) != (r["ci_lower"] > 0 or r["ci_upper"] < 0)
    assert disagreements == 0


def test_samples_are_averaged_per_item_and_the_paired_t_test_decides():
    a = [[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]]  # item means 0.75, 0.25, 1
    b = [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]]  # item means 0.25, 0.00, 0.75
    r = compare_scores(a, b)
    assert r["delta"] == pytest.approx(100 * (0.5 + 0.25 + 0.25) / 3)
    assert "mcnemar_p_value" not in r  # several samples per item: McNemar does not apply
    t = sps.ttest_rel([0.75, 0.25, 1], [0.25, 0, 0.75])
    assert r["p_value"] == pytest.approx(t.pvalue) and r["ci_lower"] == pytest.approx(100 * t.confidence_interval().low)


def test_identical_inputs_give_zero_with_a_ci_containing_it():
    rng = np.random.default_rng(0)
    scores = (rng.random((60, 4)) < 0.3).astype(float)
    r = compare_scores(scores, scores)
    assert r["delta"] == 0.0 and r["ci_lower"] <= 0.0 <= r["ci_upper"] and r["p_value"] == 1.0
    assert verdict(r) == "not resolved"
    binary = scores[:, :1]
    assert compare_scores(binary, binary)["p_value"] == 1.0 and compare_scores(binary, binary)["ci_lower"] == 0.0


def test_coverage_of_the_paired_interval_on_a_known_effect():
    """400 synthetic comparisons with a true effect of +10 points: the 95% t-interval covers it 93-97% of the time."""
    rng = np.random.default_rng(7)
    effect, n_items, n_samples, reps = 0.10, 120, 4, 400
    covered = 0
    for _ in range(reps):
        p_b = rng.uniform(0.1, 0.8, n_items)  # each replication draws its own items
        a = (rng.random((n_items, n_samples)) < (p_b + effect)[:, None]).astype(float)
        b = (rng.random((n_items, n_samples)) < p_b[:, None]).astype(float)
        r = compare_scores(a, b)
        covered += r["ci_lower"] <= 100 * effect <= r["ci_upper"]
    assert 0.93 <= covered / reps <= 0.97, covered / reps


@pytest.mark.parametrize("seeds", [2, 3])
def test_several_seeds_are_calibrated_under_a_per_seed_shift(seeds):
    """A null with a 4-point shift per training seed: 1 vs 1 says "better" far too often (and says "1 training
    seed" every time); 2 vs 2 and 3 vs 3 keep the false-"better" rate at or under 5%, and cover a true +8."""
    from semibench.calibration import simulate

    one = simulate(1, 1, reps=300, seed=1)
    assert one["resolved"] > 0.12 and one["resolved_unqualified"] == 0.0
    null = simulate(seeds, seeds, reps=600, seed=2)
    assert null["resolved"] <= 0.07, null
    effect = simulate(seeds, seeds, effect_points=8.0, reps=400, seed=3)
    assert effect["coverage"] >= 0.93 and effect["wrong_sign"] <= 0.01, effect


def test_several_seeds_against_the_untrained_model_are_calibrated():
    from semibench.calibration import simulate

    null = simulate(3, 0, reps=600, seed=4)
    assert 0.02 <= null["resolved"] <= 0.08 and null["resolved"] == null["resolved_unqualified"], null


def test_seed_variance_widens_the_interval_and_the_mde():
    rng = np.random.default_rng(2)
    n_seeds, n_items, n_samples = 3, 80, 4
    p = rng.uniform(0.2, 0.6, n_items)
    b = (rng.random((n_seeds, n_items, n_samples)) < p[None, :, None]).astype(float)
    same = (rng.random((n_seeds, n_items, n_samples)) < (p + 0.05)[None, :, None]).astype(float)
    shifts = np.array([-0.15, 0.05, 0.25])[:, None, None]  # training seeds that land far apart
    spread = (rng.random((n_seeds, n_items, n_samples)) < np.clip(p[None, :, None] + shifts, 0, 1)).astype(float)
    narrow, wide = compare_scores(same, b), compare_scores(spread, b)
    assert narrow["n_seeds"] == (3, 3) and "Welch" in wide["method"]
    assert (wide["ci_upper"] - wide["ci_lower"]) > 1.5 * (narrow["ci_upper"] - narrow["ci_lower"])
    assert wide["mde"] > 1.5 * narrow["mde"]
    per_seed_a, per_seed_b = spread.mean(axis=(1, 2)), b.mean(axis=(1, 2))
    welch = sps.ttest_ind(per_seed_a, per_seed_b, equal_var=False)
    assert wide["p_value"] == pytest.approx(welch.pvalue) and wide["ci_upper"] == pytest.approx(100 * welch.confidence_interval().high)


def test_seeds_with_different_samples_per_item_are_named_not_a_numpy_error():
    with pytest.raises(ValueError, match="same number of samples"):
        compare_scores([[[1, 0], [1, 1]], [[1], [0]]], [[1], [0]])


def test_mismatched_item_sets_are_refused():
    with pytest.raises(ItemMismatch, match="different item sets"):
        compare_scores(np.zeros((40, 4)), np.zeros((41, 4)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        compare_scores([[2.0]], [[1.0]])


def test_minimum_detectable_effect_shrinks_with_items_as_the_t_test_power_says():
    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(4)
    a = rng.random((400, 2))
    b = rng.random((400, 2))
    r = compare_scores(a, b)
    d = a.mean(axis=1) - b.mean(axis=1)
    assert r["mde"] == pytest.approx(100 * d.std(ddof=1) * TTestPower().solve_power(nobs=400, alpha=0.05, power=0.8))
    assert compare_scores(a[:100], b[:100])["mde"] > 1.8 * r["mde"]  # ~ 1/sqrt(n): 4x fewer items, ~2x the MDE


def test_holm_and_bh_adjustments_are_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.5, float("nan")]
    holm = adjust_p_values(p)
    assert holm[:4] == pytest.approx(list(multipletests(p[:4], method="holm")[1])) and np.isnan(holm[4])
    assert holm[:4] == pytest.approx([0.04, 0.09, 0.09, 0.5])  # 4 x 0.01; 3 x 0.03; max(3 x 0.03, 2 x 0.04); 0.5
    assert adjust_p_values(p, "fdr_bh")[:4] == pytest.approx(list(multipletests(p[:4], method="fdr_bh")[1]))
    with pytest.raises(ValueError, match="holm or fdr_bh"):
        adjust_p_values(p, "bonferonni")


def test_the_adjusted_p_decides_the_verdict():
    a, b = sparse_binary(7)  # exact p = 2 / 2^7 = 0.0156
    r = compare_scores(a, b, untrained=(True, True))
    assert r["verdict"] == "A better"
    assert verdict(r | {"p_adjusted": adjust_p_values([r["p_value"]] * 4)[0]}) == "not resolved"  # 4 x 0.0156 = 0.0625


def test_se_items_and_verdicts():
    assert se_items([[1.0], [0.0], [1.0], [0.0]]) == pytest.approx(100 * sps.sem([1, 0, 1, 0]))
    assert verdict({"ci_lower": 1.0, "ci_upper": 5.0}, "online", "offline") == "online better"  # a bare CI still works
    assert verdict({"ci_lower": -5.0, "ci_upper": -1.0}, "online", "offline") == "offline better"
    assert verdict({"ci_lower": 1.0, "ci_upper": 5.0, "p_value": 0.01, "min_training_seeds": 1}, "online", "offline") == "online better (1 training seed)"
    assert mcnemar(np.array([1, 0]), np.array([1, 0]))["mcnemar_p_value"] == pytest.approx(1.0)


def test_item_summary_hand_computed():
    """Item means [0.5, 1, 0, 0.5]: mean 50, SD 0.408, SE over items 20.41; per-seed scores 75 and 25: SD 35.36."""
    from semibench.stats import item_summary

    out = item_summary([[1, 0], [1, 1], [0, 0], [1, 0]])
    assert out["score"] == pytest.approx(50.0) and out["se_items"] == pytest.approx(100 * (1 / 6) ** 0.5 / 2)
    assert out["sd_seeds"] == pytest.approx(100 * 0.5 ** 0.5 / 2 * 1.0)
    half = sps.t.ppf(0.975, 3) * out["se_items"]
    assert out["ci_items"] == pytest.approx([50 - half, 50 + half])
    assert item_summary([[1], [0], [1]])["sd_seeds"] is None  # one sample per item: no spread over seeds


def test_paired_seeds_is_the_paired_t_test_on_per_seed_scores_and_refuses_unpaired_sides():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.5, 50)
    shifts = np.array([-0.1, 0.0, 0.12])[:, None, None]  # one shift per training seed, shared by both sides
    b = (rng.random((3, 50, 2)) < np.clip(p[None, :, None] + shifts, 0, 1)).astype(float)
    a = (rng.random((3, 50, 2)) < np.clip(p[None, :, None] + shifts + 0.08, 0, 1)).astype(float)
    r = compare_scores(a, b, paired_seeds=True)
    expected = sps.ttest_rel(a.mean(axis=(1, 2)), b.mean(axis=(1, 2)))
    assert r["p_value"] == pytest.approx(expected.pvalue) and r["ci_upper"] == pytest.approx(100 * expected.confidence_interval().high)
    assert "over training seeds" in r["method"] and r["n_seeds"] == (3, 3)
    for bad_a, bad_b, untrained in ((a, b[:2], (False, False)), (a[:1], b[:1], (False, False)), (a, b, (False, True))):
        with pytest.raises(ValueError, match="paired_seeds needs"):
            compare_scores(bad_a, bad_b, paired_seeds=True, untrained=untrained)


def test_shared_training_seeds_paired_stays_calibrated_where_welch_does_not_and_gains_power_where_they_correlate():
    """Arms whose per-seed shifts correlate (they share the seed's prompts and samples). Negative r: Welch's
    false-"better" rate rises over 5%, the paired test's does not. Strong positive r: paired finds a true
    +8 points more often than Welch, side by side on the same simulated grids."""
    from semibench.calibration import simulate

    welch_neg = simulate(5, 5, seed_correlation=-0.6, reps=600, seed=11)
    paired_neg = simulate(5, 5, seed_correlation=-0.6, paired=True, reps=600, seed=11)
    assert welch_neg["resolved"] > 0.06 and paired_neg["resolved"] <= 0.07, (welch_neg, paired_neg)
    assert paired_neg["coverage"] >= 0.93
    welch_pos = simulate(5, 5, effect_points=8.0, seed_correlation=0.9, reps=300, seed=12)
    paired_pos = simulate(5, 5, effect_points=8.0, seed_correlation=0.9, paired=True, reps=300, seed=12)
    assert paired_pos["resolved"] > welch_pos["resolved"] + 0.1 and paired_pos["coverage"] >= 0.92, (welch_pos, paired_pos)


def test_bench_verdicts_prints_welch_and_paired_rows_for_shared_seeds():
    """`semibench bench verdicts`: equal trained sides get a Welch and a paired row per correlation, except r = 0
    under Welch, which is the independent row itself; the seed-model row gets none."""
    from typer.testing import CliRunner

    from semibench.cli import app

    result = CliRunner().invoke(app, ["bench", "verdicts", "--seeds", "3v3,3v0", "--correlations", "0,0.9", "--reps", "20"])
    assert result.exit_code == 0, result.output
    labels = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert labels == ["3 vs 3", "3 vs 3, r +0: paired", "3 vs 3, r +0.9: Welch",
                      "3 vs 3, r +0.9: paired", "3 vs seed model"]


def test_seeds_for_an_mde_are_statsmodels_power_solved_for_the_number_of_seeds():
    """A pilot's paired comparison says how many training seeds the real one needs: the n at which the same
    t-test power gives the target (TTestPower solved for nobs), and at its own n, its own MDE."""
    import math

    from statsmodels.stats.power import TTestPower

    rng = np.random.default_rng(6)
    shifts = rng.normal(0, 0.04, (3, 1, 1))
    b = (rng.random((3, 300, 1)) < 0.35 + shifts).astype(float)
    a = (rng.random((3, 300, 1)) < 0.38 + shifts + np.array([0.04, -0.03, 0.01])[:, None, None]).astype(float)
    r = compare_scores(a, b, paired_seeds=True)
    per_seed = 100 * (a.mean(axis=(1, 2)) - b.mean(axis=(1, 2)))
    assert r["seed_var"] == pytest.approx(per_seed.var(ddof=1)) and r["fixed_var"] == 0
    assert seeds_for_mde(r["mde"] * (1 + 1e-9), r["seed_var"]) == 3  # its own MDE needs the seeds it has
    sd = math.sqrt(r["seed_var"])
    assert 2 < sd < 8  # n away from 2, where the solver's answer is a fraction of a seed
    for target in (2.0, 4.0, 8.0):
        expected = max(2, math.ceil(TTestPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8)))
        assert seeds_for_mde(target, r["seed_var"]) == expected


def test_seeds_against_the_seed_model_cannot_beat_its_item_noise():
    """Welch against the untrained model: only the trained side's variance shrinks with seeds; the seed model's
    items are a floor (its SE squared), so an MDE below ~2.8 of its SEs needs no number of seeds: None."""
    rng = np.random.default_rng(7)
    seed_model = (rng.random((300, 1)) < 0.15).astype(float)
    trained = (rng.random((3, 300, 1)) < np.array([0.30, 0.38, 0.34])[:, None, None]).astype(float)
    r = compare_scores(trained, seed_model, untrained=(False, True))
    assert r["fixed_var"] == pytest.approx(se_items(seed_model) ** 2)
    assert r["seed_var"] == pytest.approx((100 * trained.mean(axis=(1, 2))).var(ddof=1))
    floor = 2.8 * se_items(seed_model)  # ~(z 0.975 + z 0.8) standard errors at many degrees of freedom
    assert seeds_for_mde(0.95 * floor, r["seed_var"], r["fixed_var"]) is None  # once failed: statsmodels' mirror root at nobs 73
    assert seeds_for_mde(1.5 * floor, r["seed_var"], r["fixed_var"]) is not None
