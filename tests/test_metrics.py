"""Micro/macro AUC (paper 4.4) on four-note fixtures worked out by hand."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bertxml_lib import metrics

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
