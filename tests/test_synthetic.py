"""The synthetic cohort generator (notebook 01): determinism, schema, and the paper-like properties."""
import re
import time

import numpy as np
import pandas as pd
import pytest

from bertxml_lib.data import icd
from bertxml_lib.data.clinical_catalog import CATALOG, NOTE_TYPES
from bertxml_lib.data.synthetic import GENERATOR_PROPERTIES, code_pool, generate_synthetic, write_synthetic

APPENDIX = ("I10 E78.5 I25.10 E11.9 K21.9 E55.9 E03.9 E66.9 E78.00 F41.9 F32.9 I48.91 G89.29 J44.9 M19.90 M81.0 "
            "Z00.00 I48.0 Z51.11 G47.33 N40.0 J45.909 E66.01 N18.30 I48.20 Z95.0 G62.9 M17.9 E78.2 I34.0 I73.9 "
            "F41.1 E11.65 F17.200 Z23 M17.0 M54.50 C50.912 M06.9 C50.911 C50.919 R53.83 I35.0 Z51.12 J45.20").split()
EXCLUDED = ("erroneous", "student", "miscellaneous")


def _collect(n_patients, n_codes, seed, batch):
    parts = list(generate_synthetic(n_patients, n_codes, seed, batch_patients=batch))
    return (pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True))


@pytest.fixture(scope="module")
def cohort():
    notes, codes = _collect(300, 400, 0, 100)
    return notes, codes, notes["text"].str.split().str.len()


def test_schema_and_dtypes(cohort):
    notes, codes, _ = cohort
    assert list(notes.columns) == ["patient_id", "note_id", "note_date", "note_type", "text"]
    assert list(codes.columns) == ["note_id", "code"]
    assert notes["note_date"].dtype == np.dtype("datetime64[ns]")
    for col in ("patient_id", "note_id", "note_type", "text"):
        assert pd.api.types.is_string_dtype(notes[col])
    assert pd.api.types.is_string_dtype(codes["code"])
    assert notes["note_id"].is_unique and set(codes["note_id"]) <= set(notes["note_id"])
    assert not codes.duplicated().any()
    assert all(icd.normalize_code(c) == c for c in codes["code"].unique())
    assert notes["patient_id"].nunique() == 300


def test_same_seed_same_output_whatever_the_batch_size():
    a_notes, a_codes = _collect(40, 80, 3, 40)
    b_notes, b_codes = _collect(40, 80, 3, 7)
    pd.testing.assert_frame_equal(a_notes, b_notes)
    pd.testing.assert_frame_equal(a_codes, b_codes)
    c_notes, _ = _collect(40, 80, 4, 40)
    assert not a_notes["text"].equals(c_notes["text"])


def test_patients_visits_and_dates(cohort):
    notes, _, _ = cohort
    per_patient = notes.groupby("patient_id").size()
    assert 7.0 <= per_patient.mean() <= 11.0
    span_years = notes.groupby("patient_id")["note_date"].agg(lambda d: (d.max() - d.min()).days / 365)
    assert 1.0 <= span_years[per_patient > 5].median() <= 3.5


def test_note_type_mix(cohort):
    notes, _, _ = cohort
    share = notes["note_type"].value_counts(normalize=True)
    assert 0.44 <= share["progress note"] <= 0.56
    assert 0.07 <= share["telephone encounter"] <= 0.13
    assert 0.03 <= share["patient instructions"] <= 0.07
    assert len(set(share.index) - set(EXCLUDED)) >= 10
    assert set(EXCLUDED) <= set(share.index)
    assert 0.015 <= share[list(EXCLUDED)].sum() <= 0.05


def test_short_notes_present(cohort):
    notes, _, _ = cohort
    assert 0.01 <= (notes["text"].str.strip().str.len() < 50).mean() <= 0.035


def test_length_quantiles(cohort):
    notes, _, words = cohort
    assert 100 <= words.median() <= 220
    # ~800 WordPiece tokens at ~1.3-1.5 tokens per word.
    assert 450 <= words.quantile(0.9) <= 700
    assert (words > 1400).sum() >= 1
    median = notes.assign(w=words).groupby("note_type")["w"].median()
    assert median["telephone encounter"] < median["progress note"] < median["history and physical"]
    assert median["discharge summary"] > 2 * median["progress note"]


def test_codes_per_note_and_chronic_codes_skip_visits(cohort):
    notes, codes, _ = cohort
    assert 2.5 <= len(codes) / len(notes) <= 4.5  # raw; notebook 01's chronic imputation brings it to ~4.5
    # A chronic code seen twice for a patient is missing from some later notes: imputation adds labels.
    coded = codes.merge(notes[["note_id", "patient_id", "note_date"]], on="note_id")
    chronic = coded[coded["code"].map(icd.is_chronic)]
    first = chronic.groupby(["patient_id", "code"])["note_date"].agg(["size", "min"]).reset_index()
    first = first[first["size"] >= 2]
    later = notes[["patient_id", "note_date"]].merge(first, on="patient_id")
    later = later[later["note_date"] >= later["min"]]
    assert len(later) > 1.2 * first["size"].sum()


def test_codes_per_note_after_imputation_near_the_papers_four_to_five(cohort):
    from bertxml_lib.data.cohort import filter_notes, impute_chronic

    notes, codes, _ = cohort
    kept, _ = filter_notes(notes, 50, ["erroneous", "student", "miscellaneous"])
    imputed = impute_chronic(kept, codes, 2)
    assert 4.0 <= len(imputed) / len(kept) <= 5.2  # paper 4.1: 4.46 codes per note


def test_appendix_codes_are_among_the_most_frequent(cohort):
    _, codes, _ = cohort
    ranked = codes["code"].value_counts().index.tolist()
    assert set(APPENDIX[:5]) <= set(ranked[:12])
    assert len(set(APPENDIX) & set(ranked[:80])) >= 35


def _phrase_categories() -> dict[str, set]:
    table: dict[str, set] = {}
    for c in CATALOG:
        for p in c.synonyms + c.abbreviations:
            table.setdefault(p.lower(), set()).add(c.code[:3])
    return table


def test_negations_and_family_history_name_uncoded_conditions(cohort):
    notes, codes, _ = cohort
    categories = _phrase_categories()
    coded = codes.assign(cat=codes["code"].str[:3]).groupby("note_id")["cat"].agg(set)
    pattern = re.compile(r"(?:no history of|denies|mother with|brother with) ([^.]+?)(?:\.|, dx)")
    hits = bad = 0
    for note_id, text in zip(notes["note_id"], notes["text"].str.lower()):
        for phrase in pattern.findall(text):
            if phrase in categories:
                hits += 1
                bad += bool(categories[phrase] & coded.get(note_id, set()))
    assert hits >= 200
    assert bad <= 0.02 * hits


def test_some_evidence_only_beyond_word_450_in_long_notes(cohort):
    notes, codes, words = cohort
    by_note = codes.groupby("note_id")["code"].agg(list)
    phrases = {c.code: [p.lower() for p in c.synonyms + c.medications if "<" not in p and len(p) >= 8]
               + [icd.describe(c.code).lower()] for c in CATALOG}
    late_only = 0
    for note_id, text in zip(notes["note_id"][words > 650], notes["text"][words > 650]):
        tokens = text.lower().split()
        flat, cut = " ".join(tokens), len(" ".join(tokens[:450]))
        for code in by_note.get(note_id, []):
            found = [flat.find(p) for p in phrases.get(code, []) if flat.find(p) >= 0]
            late_only += bool(found) and min(found) > cut
    assert late_only >= 20


def test_text_carries_headers_sections_and_deid_tags(cohort):
    notes, _, _ = cohort
    text = notes["text"]
    assert text.str.contains("date of service:", case=False).mean() > 0.9
    assert text.str.contains("review of systems", case=False).sum() > 50
    assert text.str.contains("@name@").mean() > 0.5
    assert text.str.contains(r"\d").mean() > 0.8
    assert (text == text.str.lower()).mean() < 0.5 and (text == text.str.lower()).mean() > 0.1


def test_code_pool_catalog_and_tail():
    small = code_pool(60, 0)
    assert len(small) == 60 and set(small["source"]) == {"catalog"} and set(APPENDIX) <= set(small["code"])
    pool = code_pool(400, 0)
    assert pool["code"].is_unique and len(pool) == 400
    assert pool["source"].value_counts().to_dict() == {"tail": 400 - len(CATALOG), "catalog": len(CATALOG)}
    tail = pool[pool["source"] == "tail"]
    assert set(tail["code"]) <= set(icd.leaf_codes()) and (tail["description"] != tail["code"]).all()
    # Zipf-like: the tail continues below the rarest catalog code, weight ~ 1 / rank.
    assert tail["weight"].is_monotonic_decreasing and tail["weight"].max() <= pool["weight"][pool["source"] == "catalog"].min()
    assert (pool["chronic"] == pool["code"].map(icd.is_chronic)).all()
    pd.testing.assert_frame_equal(pool, code_pool(400, 0))
    assert set(code_pool(400, 1)["code"]) != set(pool["code"])


def test_catalog_is_valid_and_flags_match_the_chronic_list():
    codes = [c.code for c in CATALOG]
    assert 80 <= len(codes) <= 160 and len(set(codes)) == len(codes)
    assert set(codes) <= set(icd.leaf_codes()) and set(APPENDIX) <= set(codes)
    assert all(c.chronic == icd.is_chronic(c.code) for c in CATALOG)
    assert {"G44.029", "G44.329", "C50.911", "C50.912", "C50.919", "E11.9", "E11.65", "I48.0", "I48.20"} <= set(codes)
    assert abs(sum(t[1] for t in NOTE_TYPES) - 1.0) < 1e-9


def test_generator_properties_table():
    assert len(GENERATOR_PROPERTIES) >= 8
    assert all(set(p) == {"property", "paper", "generator"} for p in GENERATOR_PROPERTIES)


def test_write_synthetic_streams_parquet_atomically(tmp_path):
    raw = tmp_path / "raw"
    summary = write_synthetic(raw, n_patients=30, n_codes=60, seed=5, batch_patients=8)
    assert sorted(p.name for p in raw.iterdir()) == ["codes.parquet", "notes.parquet", "truth.parquet"]
    notes, codes = pd.read_parquet(raw / "notes.parquet"), pd.read_parquet(raw / "codes.parquet")
    expected_notes, expected_codes = _collect(30, 60, 5, 30)
    assert notes["text"].tolist() == expected_notes["text"].tolist()
    assert (notes["note_date"].to_numpy() == expected_notes["note_date"].to_numpy()).all()
    assert codes["code"].tolist() == expected_codes["code"].tolist()
    assert summary["n_notes"] == len(notes) and summary["n_code_rows"] == len(codes)


def test_speed():
    start = time.process_time()
    notes, _ = _collect(220, 400, 0, 2000)
    rate = len(notes) / (time.process_time() - start)
    assert rate > 1500, f"{rate:.0f} notes/s of CPU time"


@pytest.mark.parametrize("kwargs", [dict(n_patients=0), dict(seed=-1), dict(n_codes=0), dict(n_codes=10**6),
                                    dict(batch_patients=0)])
def test_bad_arguments_raise(kwargs):
    args = dict(n_patients=2, n_codes=60, seed=0, batch_patients=10) | kwargs
    with pytest.raises(ValueError):
        next(generate_synthetic(**args))


# --- ground truth and context knobs --------------------------------------------------------------------

def _with_truth(n_patients=40, n_codes=120, seed=2, batch=2000, **knobs):
    parts = list(generate_synthetic(n_patients, n_codes, seed, batch_patients=batch, knobs=knobs or None, with_truth=True))
    return tuple(pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))


def _phrase_regex(compiled: tuple) -> str:
    """A compiled phrase ('BP ', (142, 178, 0), ...) as a regex: numbers wherever a range was drawn."""
    return "".join(re.escape(p) if isinstance(p, str) else r"\d+(?:\.\d+)?" for p in compiled)


def test_truth_spans_are_the_phrases_the_generator_chose():
    from bertxml_lib.data.clinical_catalog import RULE_OUT_TEMPLATES, SIBLING_GROUPS
    from bertxml_lib.data.synthetic import _build_pool, _compile

    notes, codes, truth = _with_truth(p_typo=0.0, p_author_variant=0.0)
    pool = _build_pool(120, 2)
    phrases = {c.code: [_phrase_regex(t) for ts in c.phrases.values() for t in ts]
               for c, _ in [(c, 0) for table in (pool.chronic, pool.acute) for c in table[0]] + list(pool.conditional)}
    for group in SIBLING_GROUPS.values():
        for code, mods in group["modifiers"].items():
            phrases[(code, "shared")] = [_phrase_regex(_compile(p)) for p in group["shared"]]
            phrases[(code, "modifier")] = [_phrase_regex(_compile(p)) for p in mods]
    text = dict(zip(notes["note_id"], notes["text"]))
    spans = truth[truth["start"] >= 0]
    assert set(spans["form"]) == {"catalog"} and (spans["end"] > spans["start"]).all()
    checked = {"phrase": 0, "shared": 0, "modifier": 0, "cue": 0, "mention": 0}
    for row in spans.itertuples():
        piece = text[row.note_id][row.start:row.end]
        assert row.end <= len(text[row.note_id]) and piece == piece.strip()
        if row.part in ("phrase", "shared", "modifier"):
            key = row.code if row.part == "phrase" else (row.code, row.part)
            assert any(re.fullmatch(p, piece, re.IGNORECASE) for p in phrases[key]), (row, piece)
        elif row.kind == "negated" and row.part == "cue":
            assert re.search(r"\b(denies|no|negative|ruled out|excluded)\b", piece, re.IGNORECASE), piece
        elif row.kind == "family_history":
            assert re.search(r"\b(mother|father|brother|sister|family history)\b", piece, re.IGNORECASE), piece
        elif row.part == "mention":
            assert any(re.match(re.escape(t.split("{x}")[0]), piece, re.IGNORECASE)
                       for t in RULE_OUT_TEMPLATES["suspect"]), piece
        checked[row.part] += 1
    assert min(checked.values()) > 0, checked
    # Rows without a span: every code on a note is evidenced there or listed as coded without evidence.
    ev = set(zip(spans.loc[spans["kind"] == "evidenced", "note_id"], spans.loc[spans["kind"] == "evidenced", "code"]))
    coded_no = truth[truth["kind"] == "coded_no_evidence"]
    assert set(zip(codes["note_id"], codes["code"])) == ev & set(zip(codes["note_id"], codes["code"])) | set(
        zip(coded_no["note_id"], coded_no["code"]))
    assert (truth.loc[truth["start"] < 0, "end"] == -1).all()


def test_variants_and_typos_change_the_evidence_and_spans_still_slice():
    notes, _, truth = _with_truth(p_typo=0.5, p_author_variant=1.0)
    spans = truth[truth["start"] >= 0]
    text = dict(zip(notes["note_id"], notes["text"]))
    assert {"variant", "typo", "catalog"} <= set(spans["form"])
    assert all(0 <= s < e <= len(text[n]) for n, s, e in zip(spans["note_id"], spans["start"], spans["end"]))
    negated = spans[(spans["kind"] == "negated") & (spans["part"] == "cue")]
    assert all(re.search(r"\b(denies|no|negative|ruled out|excluded)\b", text[n][s:e], re.IGNORECASE)
               for n, s, e in zip(negated["note_id"], negated["start"], negated["end"]))


def test_truth_is_deterministic_whatever_the_batch_size():
    a, b = _with_truth(30, 80, 3, 30), _with_truth(30, 80, 3, 7)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)


def test_sibling_codes_are_exclusive_per_patient(cohort):
    from bertxml_lib.data.synthetic import SIBLING_OF

    notes, codes, _ = cohort
    coded = codes.merge(notes[["note_id", "patient_id"]], on="note_id")
    coded = coded[coded["code"].isin(SIBLING_OF)].assign(group=lambda d: d["code"].map(SIBLING_OF))
    members = coded.groupby(["patient_id", "group"])["code"].nunique()
    assert len(members) >= 20 and members.max() == 1


def test_knob_defaults_equal_the_base_profile_and_bad_knobs_raise():
    from bertxml_lib.core import config
    from bertxml_lib.data.synthetic import Knobs, make_knobs

    base = config.flatten(config.load_profiles_file()["base"])
    assert Knobs()._asdict() == {k: base[f"data.synthetic.{k}"] for k in Knobs._fields}
    for bad in (dict(p_typo=1.5), dict(p_negation=-0.1), dict(n_authors=0), dict(p_typo=True), dict(p_nonsense=0.1)):
        with pytest.raises(ValueError):
            make_knobs(bad)


def test_token_512_offset():
    from bertxml_lib.data.synthetic import token_512_offset

    assert token_512_offset("a bb  ccc d", words=2) == 6
    assert token_512_offset("a bb", words=2) == 4
