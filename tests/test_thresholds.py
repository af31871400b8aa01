"""F1 decision thresholds: exact search on dev, worked by hand; no test data reaches tuning."""
import numpy as np
import pytest

from bertxml_lib.evaluation import analysis, thresholds
from bertxml_lib.evaluation.predictions import Predictions


def test_best_threshold_by_hand():
    # Scores 0.9 (pos), 0.7 (neg), 0.4 (pos), 0.2 (neg); 2 positives. Keeping the top 1/2/3/4 gives
    # F1 = 2TP/(kept + 2) = 2/3, 2/4, 4/5, 4/6 -> keep 3; threshold midway between 0.4 and 0.2.
    assert thresholds.best_f1_threshold([1, 0, 1, 0], [0.9, 0.7, 0.4, 0.2]) == pytest.approx((0.3, 0.8))
    # Tied scores are kept or dropped together: {0.5, 0.5} -> 2/3, all -> 2/4.
    assert thresholds.best_f1_threshold([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx((0.3, 2 / 3))
    # Equal F1 (top 1: 2/3; all 4: 4/6) -> the higher threshold, fewer positives.
    assert thresholds.best_f1_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6]) == pytest.approx((0.85, 2 / 3))
    # Best to keep everything -> the lowest score itself (prob >= threshold keeps it).
    assert thresholds.best_f1_threshold([1, 1], [0.3, 0.2]) == pytest.approx((0.2, 1.0))
    with pytest.raises(ValueError, match="at least one positive"):
        thresholds.best_f1_threshold([0, 0], [0.3, 0.2])


def test_global_threshold_pools_all_codes_and_per_code_falls_back():
    dev_y = np.array([[1, 0, 0], [0, 1, 0]])
    dev_p = np.array([[0.9, 0.7, 0.5], [0.2, 0.4, 0.1]])
    # Pooled: 0.9+, 0.7-, 0.5-, 0.4+, 0.2-, 0.1-: top 1 -> 2/3, top 4 -> 4/6 (tie, higher wins) -> 0.8.
    assert thresholds.tune_global_threshold(dev_y, dev_p) == pytest.approx(0.8)
    # Code 0: 0.9+ 0.2- -> 0.55; code 1: 0.7- 0.4+ -> keep both, 0.4; code 2 has no positive -> global 0.8.
    assert thresholds.tune_per_code_thresholds(dev_y, dev_p) == pytest.approx([0.55, 0.4, 0.8])
    assert thresholds.tune(dev_y, dev_p) == pytest.approx(0.8)
    assert thresholds.tune(dev_y, dev_p, per_code=True).shape == (3,)
    with pytest.raises(ValueError, match="must both be"):
        thresholds.tune(dev_y, dev_p[:1])
    with pytest.raises(ValueError, match="0/1"):
        thresholds.tune(dev_y * 2, dev_p)


def test_test_data_never_reaches_threshold_tuning(monkeypatch):
    rng = np.random.default_rng(0)
    dev_y = (rng.random((20, 4)) < 0.3).astype(int)
    dev_p = rng.random((20, 4))
    codes, dev_ids, test_ids = np.array(list("ABCD")), np.arange(20).astype(str), np.arange(30).astype(str)
    pred = Predictions("row", codes, dev_ids, dev_p, test_ids, rng.random((30, 4)))
    seen = []
    real = thresholds.tune

    def spy(labels, probs, per_code=False):
        seen.append((np.asarray(labels), np.asarray(probs)))
        return real(labels, probs, per_code)

    monkeypatch.setattr(thresholds, "tune", spy)
    chosen = analysis.tune_thresholds([pred], dev_y)
    assert len(seen) == 1 and seen[0][0] is dev_y and seen[0][1] is dev_p  # only dev arrays went in
    # Whatever the test probabilities are, the threshold stays.
    other = Predictions("row", codes, dev_ids, dev_p, test_ids, 1 - pred.test_probs)
    assert analysis.tune_thresholds([other], dev_y) == chosen
    both = analysis.tune_thresholds([pred], dev_y, per_code=True)["row"]
    assert both.shape == (4,)
    assert analysis.tune_thresholds([pred], np.zeros_like(dev_y)) == {}  # no dev positive: F1 is not reported
