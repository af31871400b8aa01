"""Micro/macro AUC (paper 4.4) on four-note fixtures worked out by hand."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bertxml_lib.evaluation import metrics

# Column 0: scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1]. Positive/negative pairs:
# (0.35 > 0.1) yes, (0.35 > 0.4) no, (0.8 > 0.1) yes, (0.8 > 0.4) yes -> AUC 3/4.
# Column 1: scores [0.2, 0.1, 0.5, 0.9], labels [0, 1, 0, 1]: (0.1 > 0.2, 0.5) no, (0.9 > 0.2, 0.5) yes -> 2/4.
# Column 2: all positive -> undefined.  Column 3: all negative -> undefined.
Y = np.array([[0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
P = np.array([[0.1, 0.2, 0.3, 0.6], [0.4, 0.1, 0.2, 0.1], [0.35, 0.5, 0.1, 0.2], [0.8, 0.9, 0.4, 0.3]])


def test_per_code_auc_by_hand_with_nan_for_one_class_codes():
    aucs = metrics.per_code_auc(Y, P)
    assert aucs[:2].tolist() == [0.75, 0.5]
    assert np.isnan(aucs[2]) and np.isnan(aucs[3])


def test_macro_auc_averages_defined_codes_and_counts_skipped():
    assert metrics.macro_auc(Y, P) == (0.625, 2)
    assert metrics.macro_auc(Y[:, :1], P[:, :1]) == (0.75, 0)


def test_macro_auc_is_nan_when_no_code_is_defined():
    value, skipped = metrics.macro_auc(Y[:, 2:], P[:, 2:])
    assert np.isnan(value) and skipped == 2


def test_micro_auc_by_hand():
    # Two codes, two notes: positives scored 0.9 and 0.3, negatives 0.4 and 0.2 -> pairs won 1+1+0+1 = 3/4.
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.9, 0.4], [0.2, 0.3]])
    assert metrics.micro_auc(y, p) == 0.75


def test_ties_count_half():
    assert metrics.micro_auc(np.array([[0], [1]]), np.array([[0.5], [0.5]])) == 0.5


def test_equal_to_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 7)) < 0.3).astype(int)
    y[:, 6] = 0  # one undefined code
    p = rng.random((200, 7)) * 0.5 + y * rng.random((200, 7)) * 0.5
    aucs = metrics.per_code_auc(y, p)
    for j in range(6):
        assert aucs[j] == pytest.approx(roc_auc_score(y[:, j], p[:, j]), abs=1e-12)
    assert metrics.micro_auc(y, p) == pytest.approx(roc_auc_score(y.ravel(), p.ravel()), abs=1e-12)
    assert metrics.macro_auc(y, p) == (pytest.approx(np.mean(aucs[:6]), abs=1e-12), 1)
    assert metrics.evaluable_codes(y).tolist() == [True] * 6 + [False]


@pytest.mark.parametrize("y, p, match", [
    (np.zeros((3, 2)), np.zeros((3, 3)), "must both be"),
    (np.zeros(3), np.zeros(3), "must both be"),
    (np.array([[0, 2]]), np.zeros((1, 2)), "0/1"),
    (np.array([[0, 1]]), np.array([[0.1, np.nan]]), "non-finite"),
])
def test_bad_input_is_rejected(y, p, match):
    with pytest.raises(ValueError, match=match):
        metrics.per_code_auc(y, p)


def test_micro_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both positive and negative"):
        metrics.micro_auc(np.ones((2, 2)), np.zeros((2, 2)))


# --- the full metric set on a four-note example, worked out by hand ---------------------------
# Codes c0..c3; c3 has no positive on test. Decisions at threshold 0.5 (prob >= 0.5):
#   c0: y 1100, pred 1100 -> TP2 FP0 FN0, F1 1     c1: y 0101, pred 0110 -> TP1 FP1 FN1, F1 2/4
#   c2: y 0010, pred 0011 -> TP1 FP1 FN0, F1 2/3   c3: y 0000, pred 0001 -> TP0 FP1, F1 0
#   micro F1 = 2*4 / (2*4 + 3 + 1) = 2/3; macro over all 4 codes = (1 + 1/2 + 2/3 + 0)/4 = 13/24;
#   macro over the 3 codes present = 13/18.
Y4 = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]])
P4 = np.array([[0.9, 0.2, 0.4, 0.1], [0.6, 0.7, 0.1, 0.05], [0.3, 0.8, 0.5, 0.2], [0.2, 0.3, 0.6, 0.7]])


def test_f1_at_a_threshold_by_hand():
    f1 = metrics.f1_scores(Y4, P4, 0.5)
    assert f1["micro_f1"] == pytest.approx(2 / 3)
    assert f1["macro_f1"] == pytest.approx(13 / 24)
    assert f1["macro_f1_present"] == pytest.approx(13 / 18)
    assert metrics.per_code_f1(Y4, P4, 0.5) == pytest.approx([1, 0.5, 2 / 3, 0])
    # Per-code thresholds: c1 at 0.25 predicts notes 1, 2, 3 -> TP2 FP1 FN0 -> F1 4/5; c3 at 0.8 predicts none -> 0.
    assert metrics.per_code_f1(Y4, P4, [0.5, 0.25, 0.5, 0.8]) == pytest.approx([1, 0.8, 2 / 3, 0])
    with pytest.raises(ValueError, match="per code"):
        metrics.f1_scores(Y4, P4, [0.5, 0.5])


def test_precision_and_recall_at_k_by_hand():
    # Top-1 codes: c0 (hit), c1 (hit), c1 (miss), c3 (miss) -> P@1 = 2/4; R@1 = (1 + 1/2 + 0 + 0)/4.
    assert metrics.precision_at_k(Y4, P4, 1) == 0.5
    assert metrics.recall_at_k(Y4, P4, 1) == 0.375
    # Top-2: {c0,c2} 1 hit, {c1,c0} 2, {c1,c2} 1, {c3,c2} 0 -> P@2 = 4/8; R@2 = (1 + 1 + 1 + 0)/4.
    assert metrics.precision_at_k(Y4, P4, 2) == 0.5
    assert metrics.recall_at_k(Y4, P4, 2) == 0.75
    # k beyond the 4 codes: every true code is found (5 of them), the denominator stays k.
    assert metrics.precision_at_k(Y4, P4, 5) == pytest.approx(5 / 20)
    assert metrics.recall_at_k(Y4, P4, 10) == 1.0
    # Ties in the top k go to the lower column: both score 0.5, column 0 is taken.
    assert metrics.top_k_hits(np.array([[0, 1]]), np.array([[0.5, 0.5]]), 1).tolist() == [0]
    # A note without labels counts 0 for P@k and is left out of R@k.
    assert metrics.recall_at_k(np.array([[0, 0], [1, 0]]), np.array([[0.9, 0.1], [0.8, 0.2]]), 1) == 1.0
    assert metrics.precision_at_k(np.array([[0, 0], [1, 0]]), np.array([[0.9, 0.1], [0.8, 0.2]]), 1) == 0.5


def test_mean_average_precision_by_hand():
    # c0 ranks both positives first -> AP 1. c1 by score: 0.8 (neg), 0.7 (pos, precision 1/2), 0.3 (pos, 2/3)
    # -> AP (1/2 + 2/3)/2 = 7/12. c2: 0.6 (neg), 0.5 (pos, 1/2) -> 1/2. c3 has no positive: left out.
    assert metrics.mean_average_precision(Y4, P4) == pytest.approx((1 + 7 / 12 + 1 / 2) / 3)


def test_score_all_by_hand():
    s = metrics.score_all(Y4, P4, 0.5)
    assert list(s) == list(metrics.METRICS)
    # Per-code AUC: c0 1, c1 2/4, c2 2/3 (0.5 beats 0.4 and 0.1, not 0.6); c3 undefined.
    assert s["macro_auc"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    # Micro: 5 positives vs 11 negatives; negatives below (ties half) 0.9: 11, 0.6: 8.5, 0.7: 9.5, 0.3: 6.5,
    # 0.5: 8 -> 43.5 / 55.
    assert s["micro_auc"] == pytest.approx(43.5 / 55)
    assert (s["p_at_5"], s["p_at_8"], s["p_at_15"], s["r_at_10"]) == pytest.approx((5 / 20, 5 / 32, 5 / 60, 1.0))
    assert s["micro_f1"] == pytest.approx(2 / 3) and s["map"] == pytest.approx(25 / 36)
    no_threshold = metrics.score_all(Y4, P4, None)
    assert np.isnan(no_threshold["micro_f1"]) and no_threshold["micro_auc"] == s["micro_auc"]


# --- weighted fast path and the patient bootstrap ---------------------------------------------

def _tied_data(seed=1, n=60, n_codes=9):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_codes)) < 0.3).astype(int)
    y[:, -1] = 0  # one code without a positive
    p = np.round(rng.random((n, n_codes)) * 0.5 + y * rng.random((n, n_codes)) * 0.5, 1)  # many ties
    return y, p


@pytest.mark.parametrize("seed", [1, 5, 11])
def test_weighted_metrics_equal_sklearn_on_duplicated_notes(seed):
    y, p = _tied_data(seed)
    weights = np.random.default_rng(seed + 1).integers(0, 3, size=(3, len(y))).astype(float)
    fast = metrics.weighted_metrics(y, p, [0.45] * 8 + [0.3], np.vstack([np.ones(len(y)), weights]))
    reference = metrics.score_all(y, p, [0.45] * 8 + [0.3])
    for name in metrics.METRICS:
        assert fast[name][0] == pytest.approx(reference[name], abs=1e-12), name
    for b, w in enumerate(weights, start=1):
        counts = w.astype(int)
        dup = metrics.score_all(np.repeat(y, counts, axis=0), np.repeat(p, counts, axis=0), [0.45] * 8 + [0.3])
        for name in metrics.METRICS:
            assert fast[name][b] == pytest.approx(dup[name], abs=1e-12, nan_ok=True), name
        # Integer weights and sklearn's sample_weight agree too.
        assert fast["micro_auc"][b] == pytest.approx(
            roc_auc_score(y.ravel(), p.ravel(), sample_weight=np.repeat(w, y.shape[1])), abs=1e-12)


def test_resampling_moves_a_patients_notes_together():
    patients = ["a", "b", "a", "c", "a", "b"]
    w = metrics.patient_resample_weights(patients, 50, seed=0)
    assert w.shape == (50, 6)
    assert (w[:, 0] == w[:, 2]).all() and (w[:, 0] == w[:, 4]).all() and (w[:, 1] == w[:, 5]).all()
    # Three patients drawn per resample: a's three notes count 3x its draws.
    assert ((w[:, 0] + w[:, 1] + w[:, 3]) == 3).all()
    # Patient A: 3 notes decided right (TP on c0), patient B: 1 note decided wrong (FP on c0, FN on c1).
    # Micro F1 of a resample with k A-notes out of 4 is k/4; drawing patients gives only AA (1), AB (3/4)
    # or BB (0), whereas drawing notes on their own would also give 1/4 and 1/2.
    y = np.array([[1, 0]] * 3 + [[0, 1]])
    p = np.array([[0.9, 0.1]] * 4)
    samples = metrics.bootstrap_metrics(y, p, 0.5, ["A", "A", "A", "B"], n_resamples=200, seed=0)
    assert set(np.round(samples["micro_f1"], 6)) == {0.0, 0.75, 1.0}


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic_by_seed():
    y, p = _tied_data(seed=3, n=120)
    patients = [f"p{i // 3}" for i in range(len(y))]
    point = metrics.score_all(y, p, 0.45)
    ci = metrics.confidence_intervals(metrics.bootstrap_metrics(y, p, 0.45, patients, 100, seed=7))
    for name in metrics.METRICS:
        assert ci[f"{name}_ci_low"] <= point[name] <= ci[f"{name}_ci_high"], name
        assert ci[f"{name}_ci_low"] < ci[f"{name}_ci_high"] or name == "r_at_10", name
    assert metrics.confidence_intervals(metrics.bootstrap_metrics(y, p, 0.45, patients, 100, seed=7)) == ci
    assert metrics.confidence_intervals(metrics.bootstrap_metrics(y, p, 0.45, patients, 100, seed=8)) != ci
    # The resamples depend on patients, not on the order of the notes.
    order = np.random.default_rng(0).permutation(len(y))
    shuffled = metrics.confidence_intervals(
        metrics.bootstrap_metrics(y[order], p[order], 0.45, [patients[i] for i in order], 100, seed=7))
    assert shuffled == pytest.approx(ci, abs=1e-12)
    with pytest.raises(ValueError, match="patient ids"):
        metrics.bootstrap_metrics(y, p, 0.45, patients[:-1], 10)


def test_bootstrap_blocks_give_the_same_samples(monkeypatch):
    y, p = _tied_data(seed=4, n=30)
    patients = [f"p{i // 2}" for i in range(len(y))]
    whole = metrics.bootstrap_metrics(y, p, 0.45, patients, 20, seed=1)
    monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", y.size * 3)  # 7 blocks of at most 3 resamples
    blocked = metrics.bootstrap_metrics(y, p, 0.45, patients, 20, seed=1)
    for name in metrics.METRICS:
        np.testing.assert_allclose(blocked[name], whole[name], atol=1e-12)


def test_prior_scores_every_note_with_the_training_frequency_of_each_code():
    from bertxml_lib.evaluation.prior import prior_probs

    y_train = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]])
    probs = prior_probs(y_train, 2)
    np.testing.assert_allclose(probs, [[0.75, 0.25, 0.25]] * 2)
    # micro AUC by hand: positives 0.75 and 0.25 against negatives 0.25, 0.25, 0.75, 0.25 -> (3.5 + 1.5) / 8
    y_test = np.array([[1, 0, 0], [0, 0, 1]])
    assert metrics.micro_auc(y_test, probs) == pytest.approx(0.625)


# --- macro over codes with enough test positives; paired differences and verdicts -------------

def test_codes_with_positives_and_macro_over_them():
    y = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]])
    p = np.array([[0.9, 0.1, 0.8], [0.2, 0.3, 0.1], [0.4, 0.7, 0.6], [0.3, 0.2, 0.7]])
    # Positives per code: 2, 1, 3 (code 2 has a negative: note 1).
    assert metrics.codes_with_positives(y, 2).tolist() == [True, False, True]
    assert metrics.codes_with_positives(y, 1).tolist() == [True, True, True]
    # Per-code AUC by hand: code 0 positives 0.9, 0.2 vs negatives 0.4, 0.3 -> 2 of 4 pairs won; codes 1, 2 perfect.
    aucs = metrics.per_code_auc(y, p)
    assert aucs.tolist() == pytest.approx([0.5, 1.0, 1.0])
    mask = metrics.codes_with_positives(y, 2)
    assert metrics.score_all(y, p, None, mask)["macro_auc"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics.score_all(y, p, None)["macro_auc"] == pytest.approx(2.5 / 3)
    one = metrics.bootstrap_metrics(y, p, None, ["a", "b", "c", "d"], 1, seed=0, macro_codes=mask, per_code=True)
    assert one["per_code_auc"].shape == (1, 3)
    # All-ones weights equal the point estimate over the same codes.
    weighted = metrics.WeightedScorer(y, p, None, mask).score(np.ones((1, 4)))
    assert weighted["macro_auc"][0] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="min_positives"):
        metrics.codes_with_positives(y, 0)


@pytest.mark.parametrize("low, high, expected", [
    (0.01, 0.05, "holds"), (-0.05, -0.01, "contradicted"), (-0.01, 0.02, "inconclusive"),
    (0.0, 0.02, "inconclusive"), (-0.02, 0.0, "inconclusive"), (np.nan, np.nan, "inconclusive")])
def test_verdict_is_three_way_on_the_interval_never_the_point(low, high, expected):
    assert metrics.verdict(low, high) == expected


def test_paired_difference_by_hand():
    # Per-resample differences 0.1, 0.0, 0.3, -0.05 -> sorted -0.05, 0, 0.1, 0.3; numpy's linear percentile:
    # 2.5% at position 0.075 -> -0.05 + 0.075 * 0.05 = -0.04625; 97.5% at 2.925 -> 0.1 + 0.925 * 0.2 = 0.285.
    d = metrics.paired_difference([0.8, 0.7, 0.9, 0.6], [0.7, 0.7, 0.6, 0.65], 0.78, 0.70)
    assert d["difference"] == pytest.approx(0.08) and d["n_resamples"] == 4
    assert d["ci_low"] == pytest.approx(-0.04625) and d["ci_high"] == pytest.approx(0.285)
    assert d["verdict"] == "inconclusive"
    # A resample where either row is undefined is left out.
    d = metrics.paired_difference([0.8, np.nan, 0.9], [0.7, 0.7, 0.6], 0.85, 0.65)
    assert d["n_resamples"] == 2 and d["verdict"] == "holds"  # differences 0.1 and 0.3
    assert d["ci_low"] == pytest.approx(0.1 + 0.025 * 0.2) and d["ci_high"] == pytest.approx(0.1 + 0.975 * 0.2)
    with pytest.raises(ValueError, match="paired samples"):
        metrics.paired_difference([0.1, 0.2], [0.1], 0, 0)


def test_paired_bootstrap_uses_the_same_resamples_for_both_rows():
    y, p = _tied_data(seed=5, n=40)
    patients = [f"p{i // 2}" for i in range(len(y))]
    # A monotone transform of the scores ranks every resample identically: every paired difference is 0,
    # although each row's own interval is wide (unpaired intervals would overlap, not cancel).
    same = metrics.paired_bootstrap(y, p, p ** 3, patients, 50, seed=2)
    assert same["difference"] == 0 and same["ci_low"] == same["ci_high"] == 0 and same["verdict"] == "inconclusive"
    own = metrics.confidence_intervals(metrics.bootstrap_metrics(y, p, None, patients, 50, seed=2))
    assert own["micro_auc_ci_high"] - own["micro_auc_ci_low"] > 0.05
    # The labels themselves beat a constant-plus-noise scorer on every resample; reversed, the claim is contradicted.
    noise = np.random.default_rng(0).random(y.shape)
    assert metrics.paired_bootstrap(y, y + 0.01 * noise, noise, patients, 50, seed=2)["verdict"] == "holds"
    assert metrics.paired_bootstrap(y, noise, y + 0.01 * noise, patients, 50, seed=2)["verdict"] == "contradicted"
    with pytest.raises(ValueError, match="threshold-free"):
        metrics.paired_bootstrap(y, p, p, patients, 5, metric="micro_f1")


def test_bootstrap_micro_equals_the_micro_metrics_of_bootstrap_metrics():
    rng = np.random.default_rng(5)
    y = (rng.random((60, 7)) < 0.3).astype(int)
    p = np.round(rng.random((60, 7)), 2)  # ties included
    patients = [f"p{i // 3}" for i in range(60)]
    full = metrics.bootstrap_metrics(y, p, 0.5, patients, 40, seed=2)
    micro = metrics.bootstrap_micro(y, p, 0.5, patients, 40, seed=2)
    np.testing.assert_allclose(micro["micro_auc"], full["micro_auc"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(micro["micro_f1"], full["micro_f1"], rtol=0, atol=1e-12)
    assert np.isnan(metrics.bootstrap_micro(y, p, None, patients, 5)["micro_f1"]).all()
