"""The oracle row and the cohort's context phenomena (notebook 01, synthetic source): views of hand-made
ground truth, a lookup with hand-worked values, fitted on train only, and on a small generated cohort."""
import json

import numpy as np
import pandas as pd
import pytest

from bertxml_lib import stages
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.data.synthetic import TOKEN_512_WORDS, load_truth
from bertxml_lib.evaluation import metrics, oracle
from bertxml_lib.evaluation.prior import prior_probs

# A long note: shared afib phrase early, its modifier (I48.0) and a rule-out's cue late; family history
# and past history early. A short note: E11.65 named by a full phrase.
_WORDS = [f"w{i}" for i in range(TOKEN_512_WORDS + 40)]
LONG = " ".join(_WORDS[:5]) + " afib concern for pe mother with htn hx of hld " + " ".join(_WORDS[5:]) + \
    " paroxysmal episodes pe ruled out"
SHORT = "uncontrolled type 2 diabetes today"


def _span(note, text, code, kind, part, piece, after=0):
    start = text.index(piece, after)
    return dict(note_id=note, code=code, kind=kind, part=part, form="catalog", start=start, end=start + len(piece))


@pytest.fixture()
def hand_truth():
    late = LONG.index("paroxysmal")
    rows = [_span("n1", LONG, "I48.0", "evidenced", "shared", "afib"),
            _span("n1", LONG, "I48.0", "evidenced", "modifier", "paroxysmal episodes"),
            _span("n1", LONG, "I26.99", "negated", "mention", "concern for pe"),
            _span("n1", LONG, "I26.99", "negated", "cue", "pe ruled out", late),
            _span("n1", LONG, "I10", "family_history", "cue", "mother with htn"),
            _span("n1", LONG, "E78.5", "past_history", "phrase", "hld"),
            _span("n2", SHORT, "E11.65", "evidenced", "phrase", "uncontrolled type 2 diabetes"),
            dict(note_id="n2", code="I10", kind="coded_no_evidence", part="", form="", start=-1, end=-1)]
    return pd.DataFrame(rows), pd.Series({"n1": LONG, "n2": SHORT})


def _views(truth, texts, variant):
    v = oracle.note_views(truth, texts, variant)
    return dict(zip(zip(v["note_id"], v["code"]), v["view"]))


def test_views_of_hand_made_truth(hand_truth):
    truth, texts = hand_truth
    full = {("n1", "I48.0"): "evidenced", ("n1", "I26.99"): "negated", ("n1", "I10"): "family_history",
            ("n1", "E78.5"): "past_history", ("n2", "E11.65"): "evidenced"}
    assert _views(truth, texts, "oracle") == full       # a code coded without evidence has no view
    assert _views(truth, texts, "no_negation") == full | {("n1", "I26.99"): "evidenced"}
    assert _views(truth, texts, "no_family_history") == full | {("n1", "I10"): "evidenced"}
    afib = {("n1", c): "shared" for c in ("I48.0", "I48.20", "I48.91")}
    diabetes = {("n2", c): "shared" for c in ("E11.9", "E11.65")}
    assert _views(truth, texts, "no_siblings") == full | afib | diabetes
    # First 512 tokens: the modifier and the rule-out's cue lie past word TOKEN_512_WORDS; the short note is whole.
    assert LONG.index("paroxysmal") > oracle.token_512_offset(LONG) > LONG.index("hld")
    assert _views(truth, texts, "first_512") == full | afib | {("n1", "I26.99"): "suspected"}
    with pytest.raises(ValueError):
        oracle.note_views(truth, texts, "psychic")


def test_lookup_worked_by_hand():
    ev, none = oracle.VIEWS.index("evidenced"), oracle.VIEWS.index("none")
    views = np.array([[ev, ev], [ev, none], [none, none], [none, none]])
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    lookup = oracle.fit_lookup(views, y, smoothing=5.0)
    # View-wide rates: evidenced 2/3 (3 cells), none 1/5; cell (code, view) = (pos + 5 * rate) / (n + 5).
    assert lookup[0, ev] == pytest.approx((2 + 5 * 2 / 3) / 7)
    assert lookup[1, ev] == pytest.approx((0 + 5 * 2 / 3) / 6)
    assert lookup[0, none] == pytest.approx((0 + 5 * 0.2) / 7)
    assert lookup[1, none] == pytest.approx((1 + 5 * 0.2) / 8)
    assert lookup[0, oracle.VIEWS.index("negated")] == 0.0   # never seen: the view-wide rate, 0 here
    np.testing.assert_allclose(oracle.score(lookup, np.array([[ev, none]])), [[lookup[0, ev], lookup[1, none]]],
                               rtol=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle_run")
    stats = stages.run_cohort(out, seed=0, source="synthetic", n_patients=50, n_codes=60, min_chars=50,
                              excluded_types=["erroneous", "student", "miscellaneous"], split_fractions=[0.7, 0.1, 0.2],
                              chronic_min_count=2, min_train_count=8)
    return out, stats


def test_truth_offsets_survive_the_cohort_build(run):
    out, _ = run
    raw = pd.read_parquet(RunPaths(out).raw_dir / "notes.parquet").set_index("note_id")["text"]
    cohort = load_cohort(out).notes.set_index("note_id")["text"]
    assert (cohort == raw.loc[cohort.index]).all()          # note ids and texts unchanged
    truth = load_truth(out)
    spans = truth[(truth["start"] >= 0) & truth["note_id"].isin(cohort.index)]
    assert len(spans) > 500
    assert all(0 <= s < e <= len(cohort[n]) for n, s, e in zip(spans["note_id"], spans["start"], spans["end"]))


def test_oracle_is_fitted_on_train_only(run):
    out, _ = run
    cohort, truth = load_cohort(out), load_truth(out)
    lookup = oracle.oracle_scores(cohort, truth)["lookup"]
    notes = cohort.notes

    def relabel(split):  # flip every note of `split`: unlabelled notes get three codes, labelled ones none
        return [(list(cohort.codes[:3]) if not labels else []) if s == split else labels
                for s, labels in zip(notes["split"], notes["labels"])]

    cohort.notes = notes.assign(labels=relabel("test"))
    np.testing.assert_array_equal(oracle.oracle_scores(cohort, truth)["lookup"], lookup)
    cohort.notes = notes.assign(labels=relabel("train"))
    assert not np.array_equal(oracle.oracle_scores(cohort, truth)["lookup"], lookup)


def test_oracle_row_beats_the_prior_and_records_its_decomposition(run):
    out, stats = run
    paths = RunPaths(out)
    record = json.loads(paths.metrics_file("oracle").read_text())
    assert record["model"] == "oracle" and record == pytest.approx(stats["oracle"]["record"])
    cohort = load_cohort(out)
    y_test = cohort.labels("test")
    prior = metrics.micro_auc(y_test, prior_probs(cohort.labels("train"), len(y_test)))
    assert record["micro_auc"] > prior + 0.05
    table = pd.read_csv(paths.table("oracle_decomposition.csv"))
    assert table["variant"].tolist() == list(oracle.VARIANTS)
    assert table["micro_auc"].between(0.5, 1.0).all() and table["micro_auc"].iloc[0] == pytest.approx(record["micro_auc"])
    assert paths.predictions_file("oracle").exists()


def test_real_sources_record_no_oracle(tmp_path):
    assert oracle.run_oracle(tmp_path, source="csv") == {}
    assert oracle.phenomena_table(tmp_path, source="csv") is None
    assert not any(tmp_path.iterdir())


_ZERO = dict(p_negation=0.0, p_local_negation=0.0, p_rule_out=0.0, p_late_cue=0.0, p_late_evidence=0.0,
             p_sibling_split=0.0, p_author_variant=0.0, p_typo=0.0, n_authors=1)


def test_phenomena_rates_lie_in_0_1_and_follow_their_knobs(run, tmp_path):
    _, stats = run
    default = stats["phenomena"].set_index("phenomenon")["ours"]
    zero = stages.run_cohort(tmp_path, seed=0, source="synthetic", n_patients=50, n_codes=60, min_chars=50,
                             excluded_types=["erroneous", "student", "miscellaneous"], split_fractions=[0.7, 0.1, 0.2],
                             chronic_min_count=2, min_train_count=8, synthetic=_ZERO)["phenomena"]
    zero = zero.set_index("phenomenon")["ours"]
    assert default.between(0, 1).all() and zero.between(0, 1).all()
    for name in ("condition mentions that are negated (distinct note-code pairs)",
                 "notes with a negated mention of a label-set code that is not a label",
                 "rule-outs whose cue lies only after token 512", "labels evidenced only after token 512",
                 "evidenced sibling-code labels whose modifier is in a separate sentence",
                 "evidence phrases in an author's habitual variant", "evidence phrases with a misspelled word"):
        assert zero[name] == 0.0, name
    for name in ("condition mentions that are negated (distinct note-code pairs)", "labels evidenced only after token 512",
                 "evidence phrases in an author's habitual variant", "evidence phrases with a misspelled word"):
        assert default[name] > 0.0, name
    unseen = "test evidence spans (label-set codes) phrased as never in training"
    assert default[unseen] > zero[unseen]
    published = stats["phenomena"].set_index("phenomenon")
    assert published.loc["condition mentions that are negated (distinct note-code pairs)", "source"].startswith("Chapman")
    assert published.loc["labels evidenced only after token 512", "published (real notes)"] == "—"
