"""data.source=fhir on hand-written FHIR R4 exports, in both layouts (Bulk Data NDJSON and Bundles): every note,
code and count below is worked out from the resources in `small_export`."""
from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

from bertxml_lib.core import config
from bertxml_lib.data import fhir, fhir_read, sources
from bertxml_lib.data.validation import DataError

ICD10, ICD9, SNOMED = fhir.ICD_SYSTEMS[10], fhir.ICD_SYSTEMS[9], "http://snomed.info/sct"
HTML_NOTE = "<h1>Discharge summary</h1><h2>Assessment</h2><p>Hypertension and diabetes, both &amp; stable.</p>"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ref(key: str) -> dict:
    return {"reference": key}


def condition(cid, patient, codings, encounter=None, onset=None, abatement=None, status=None) -> dict:
    r = {"resourceType": "Condition", "id": cid, "subject": ref(f"Patient/{patient}"),
         "code": {"coding": [{"system": s, "code": c} for s, c in codings]}}
    if encounter:
        r["encounter"] = ref(f"Encounter/{encounter}")
    if onset:
        r["onsetDateTime"] = onset
    if abatement:
        r["abatementDateTime"] = abatement
    if status:
        r["verificationStatus"] = {"coding": [{"code": status}]}
    return r


def doc(did, patient, encounter, attachments, date=None, period_start=None, type_display="Progress note") -> dict:
    r = {"resourceType": "DocumentReference", "id": did, "status": "current", "subject": ref(f"Patient/{patient}"),
         "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": type_display}]},
         "content": [{"attachment": a} for a in attachments], "context": {}}
    if encounter:
        r["context"]["encounter"] = [ref(f"Encounter/{encounter}")]
    if date:
        r["date"] = date
    if period_start:
        r["context"]["period"] = {"start": period_start}
    return r


def small_export() -> list[dict]:
    """Two patients, three encounters.

    e1 (p1): Encounter.diagnosis -> c1 (I10, plus a SNOMED coding) and c2 (E11.9): several diagnoses.
    e2 (p1): no diagnosis list; c3 (N17.9) names it in Condition.encounter only; c5 (J18.9) is refuted.
    e3 (p2): c4 is coded in ICD-9 only (401.9).
    Notes: d1 (e1, base64 HTML) and comp1 (e1, the same text as an XHTML narrative: a duplicate), d2 (e2, base64
    plain text, a url-only second attachment), d3 (p1, no encounter), d4 and comp2 (e3), d5 (url only: no text).
    An Observation is of a type this source ignores."""
    return [
        {"resourceType": "Patient", "id": "p1"}, {"resourceType": "Patient", "id": "p2"},
        {"resourceType": "Encounter", "id": "e1", "subject": ref("Patient/p1"),
         "diagnosis": [{"condition": ref("Condition/c1"), "rank": 1}, {"condition": ref("Condition/c2")}]},
        {"resourceType": "Encounter", "id": "e2", "subject": ref("Patient/p1")},
        {"resourceType": "Encounter", "id": "e3", "subject": ref("Patient/p2")},
        condition("c1", "p1", [(ICD10, "I10"), (SNOMED, "38341003")], onset="2150-01-01"),
        condition("c2", "p1", [(ICD10, "e119")]),
        condition("c3", "p1", [(ICD10, "N179")], encounter="e2", onset="2150-01-10", abatement="2150-01-20T08:00:00Z"),
        condition("c4", "p2", [(ICD9, "4019")], encounter="e3", onset="2150-03-01"),
        condition("c5", "p1", [(ICD10, "J18.9")], encounter="e2", onset="2150-01-10", status="refuted"),
        doc("d1", "p1", "e1", [{"contentType": "text/html", "data": b64(HTML_NOTE)}], date="2150-01-05T10:30:00+01:00",
            type_display="Discharge summary"),
        {"resourceType": "Composition", "id": "comp1", "status": "final", "subject": ref("Patient/p1"),
         "encounter": ref("Encounter/e1"), "date": "2150-01-05", "type": {"coding": [{"code": "18842-5"}]},
         "title": "Discharge summary",
         "section": [{"title": "Assessment", "text": {"status": "generated", "div":
                      '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hypertension and   diabetes, both &amp; stable.'
                      '</p></div>'}}]},
        doc("d2", "p1", "e2", [{"contentType": "text/plain; charset=utf-8", "data": b64("Acute kidney injury: creatinine rising.")},
                               {"contentType": "application/pdf", "url": "Binary/pdf-d2"}], period_start="2150-01-12"),
        doc("d3", "p1", None, [{"contentType": "text/plain", "data": b64("Phone call, no encounter.")}], date="2150-02-01"),
        doc("d4", "p2", "e3", [{"contentType": "text/plain", "data": b64("Blood pressure high.")}], date="2150-03-02"),
        {"resourceType": "Composition", "id": "comp2", "status": "final", "subject": ref("Patient/p2"),
         "encounter": ref("Encounter/e3"), "date": "2150-03-03", "type": {"text": "Consult note"}, "title": "Consult",
         "section": [{"title": "Plan", "text": {"div": "<div><ul><li>Start lisinopril</li><li>Recheck</li></ul></div>"},
                      "section": [{"title": "Follow-up", "text": {"div": "<div>In two weeks</div>"}}]}]},
        doc("d5", "p1", "e1", [{"contentType": "text/plain", "url": "https://ehr.example/Binary/5"}], date="2150-01-06"),
        {"resourceType": "Observation", "id": "o1", "status": "final"},
    ]


def write_ndjson(root, resources, gz_types=()) -> None:
    """Bulk Data layout: one <ResourceType>.ndjson per type (gzipped for `gz_types`)."""
    root.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    for rtype, lines in by_type.items():
        body = "\n".join(lines) + "\n"
        if rtype in gz_types:
            with gzip.open(root / f"{rtype}.ndjson.gz", "wt") as fh:
                fh.write(body)
        else:
            (root / f"{rtype}.ndjson").write_text(body)


def write_bundles(root, resources, n_bundles=2) -> None:
    """Bundle layout: transaction Bundles whose entries reference each other by `urn:uuid:` fullUrls."""
    root.mkdir(parents=True, exist_ok=True)
    urls = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['resourceType'].lower()}-{r['id']}" for r in resources}
    text = json.dumps(resources)
    for key, url in urls.items():
        text = text.replace(f'"reference": "{key}"', f'"reference": "{url}"')
    resources = json.loads(text)
    for b in range(n_bundles):
        entries = [{"fullUrl": urls[f"{r['resourceType']}/{r['id']}"], "resource": r,
                    "request": {"method": "POST", "url": r["resourceType"]}} for r in resources[b::n_bundles]]
        (root / f"bundle{b}.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction",
                                                          "entry": entries}, indent=1))


@pytest.fixture(params=["ndjson", "bundle"])
def export_dir(request, tmp_path):
    root = tmp_path / request.param
    (write_ndjson(root, small_export(), gz_types=("Encounter",)) if request.param == "ndjson"
     else write_bundles(root, small_export()))
    return root


def test_encounter_labels_in_both_layouts(export_dir):
    notes, codes, info = fhir.load_fhir(export_dir, 10)
    notes = notes.set_index("note_id")
    assert list(notes.index) == ["DocumentReference/d1", "DocumentReference/d2"]
    assert notes.loc["DocumentReference/d1", "text"] == "Discharge summary\nAssessment\nHypertension and diabetes, both & stable."
    assert notes.loc["DocumentReference/d2", "text"] == "Acute kidney injury: creatinine rising."
    assert notes["patient_id"].tolist() == ["p1", "p1"]
    # the offset is dropped (local clock time); d2 has no date, its context.period.start is used
    assert notes["note_date"].tolist() == [pd.Timestamp("2150-01-05 10:30"), pd.Timestamp("2150-01-12")]
    assert notes["note_date"].dtype == "datetime64[ns]"
    assert notes["note_type"].tolist() == ["Discharge summary", "Progress note"]
    # several diagnoses of e1 (Encounter.diagnosis); c3 linked only by Condition.encounter; refuted c5 gives none
    assert codes.values.tolist() == [["DocumentReference/d1", "E11.9"], ["DocumentReference/d1", "I10"],
                                     ["DocumentReference/d2", "N17.9"]]
    assert info["notes_read"] == 6 and info["notes"] == 2
    assert info["duplicates_dropped"] == 1                     # comp1 = d1's text in e1
    assert info["notes_without_encounter"] == 1                # d3
    assert info["notes_of_uncoded_encounters"] == 2            # d4, comp2: e3 has ICD-9 codes only
    assert info["notes_without_text"] == 1 and info["attachments_url_only"] == 2   # d5; d2's PDF url
    assert info["conditions_refuted_or_in_error"] == 1
    assert info["codings_other_system"] == {ICD9: 1, SNOMED: 1}
    assert info["resources_ignored"] == {"Observation": 1}
    assert info["resources"] == {"Composition": 2, "Condition": 5, "DocumentReference": 5, "Encounter": 3, "Patient": 2}
    assert info["references_missing_encounter"] == 0 and info["references_missing_patient"] == 0


def test_icd9_labels_and_composition_sections(export_dir):
    notes, codes, info = fhir.load_fhir(export_dir, 9)
    notes = notes.set_index("note_id")
    assert sorted(notes.index) == ["Composition/comp2", "DocumentReference/d4"]
    # nested sections in order, XHTML list items on their own lines; type.text when there is no coding
    assert notes.loc["Composition/comp2", "text"] == "Consult\nPlan\nStart lisinopril\nRecheck\nFollow-up\nIn two weeks"
    assert notes.loc["Composition/comp2", "note_type"] == "Consult note"
    assert codes["code"].tolist() == ["401.9", "401.9"]
    assert info["notes_of_uncoded_encounters"] == 2 and info["codings_other_system"] == {ICD10: 3, SNOMED: 1}  # refuted c5 not read


def test_patient_period_labels(export_dir):
    """c1 (I10) from 2150-01-01 on; c3 (N17.9) 2150-01-10..01-20; c2 has no onset; p2's only code is ICD-9."""
    notes, codes, info = fhir.load_fhir(export_dir, 10, labels="patient_period")
    assert sorted(notes["note_id"]) == ["DocumentReference/d1", "DocumentReference/d2", "DocumentReference/d3"]
    assert codes.values.tolist() == [["DocumentReference/d1", "I10"], ["DocumentReference/d2", "I10"],
                                     ["DocumentReference/d2", "N17.9"], ["DocumentReference/d3", "I10"]]
    assert info["conditions_without_onset"] == 1 and info["notes_without_active_condition"] == 2
    assert info["fhir_labels"] == "patient_period"


def test_both_layouts_give_the_same_tables(tmp_path):
    write_ndjson(tmp_path / "a", small_export())
    write_bundles(tmp_path / "b", small_export(), n_bundles=3)
    (tmp_path / "c").mkdir()
    write_ndjson(tmp_path / "c", [r for r in small_export() if r["resourceType"] != "Condition"])
    (tmp_path / "c" / "conditions.json").write_text(json.dumps(
        {"resourceType": "Bundle", "type": "collection",
         "entry": [{"resource": r} for r in small_export() if r["resourceType"] == "Condition"]}))
    a, b, c = (fhir.load_fhir(tmp_path / x, 10) for x in "abc")
    for other in (b, c):  # notes come in file order
        pd.testing.assert_frame_equal(a[0].sort_values("note_id", ignore_index=True),
                                      other[0].sort_values("note_id", ignore_index=True))
        pd.testing.assert_frame_equal(a[1], other[1])


def test_entered_in_error_notes_become_erroneous(tmp_path):
    resources = small_export()
    resources[10]["status"] = "entered-in-error"  # d1
    write_ndjson(tmp_path, resources)
    notes, _, _ = fhir.load_fhir(tmp_path, 10)
    assert notes.set_index("note_id").loc["DocumentReference/d1", "note_type"] == "erroneous"


def test_html_to_text_drops_scripts_and_keeps_blocks():
    assert fhir_read.html_to_text("<div>a<br/>b<script>x()</script><table><tr><td>c</td><td>d</td></tr></table></div>") == \
        "a\nb\ncd"


def test_load_source_streams_notes_to_raw_and_records_counts(export_dir, tmp_path):
    out = tmp_path / "run"
    notes_path, codes = sources.load_source("fhir", out, seed=0, n_patients=0, n_codes=0, data_dir=str(export_dir),
                                            stream=True)
    assert notes_path == out / "raw" / "fhir_notes.parquet" and len(codes) == 3
    assert pd.read_parquet(notes_path)["note_id"].tolist() == ["DocumentReference/d1", "DocumentReference/d2"]
    info = json.loads((out / "raw" / "source.json").read_text())
    assert info["source"] == "fhir" and info["notes"] == 2 and info["code_pairs"] == 3 and not info["has_split"]
    assert "Hypertension" not in (out / "raw" / "source.json").read_text()
    assert sources.labels_icd_version("fhir", 9) == 9
    assert not config.resolve_show_text("auto", out_dir=out)


def test_profile_lists_fhir_and_its_label_modes():
    defaults = config.resolve("quick")
    assert defaults["data.fhir_labels"] == "encounter"
    assert config.choices()["data.source"] == list(sources.SOURCES)
    assert config.choices()["data.fhir_labels"] == list(fhir.LABEL_MODES)
    assert config.check_override("data.source", "fhir", defaults) == "fhir"
    with pytest.raises(config.ConfigError, match="expects one of"):
        config.check_override("data.source", "fihr", defaults)


# ---------------------------------------------------------------------------------------------
# Bad input: a DataError naming the file, line or entry, resource and field; nothing written
# ---------------------------------------------------------------------------------------------

def ndjson_with(tmp_path, extra_line: str, name="DocumentReference.ndjson"):
    write_ndjson(tmp_path, small_export())
    with open(tmp_path / name, "a") as fh:
        fh.write(extra_line + "\n")
    return tmp_path


def test_bad_line_is_not_json(tmp_path):
    root = ndjson_with(tmp_path, '{"resourceType": "DocumentReference", "id": ')
    with pytest.raises(DataError, match=r"DocumentReference\.ndjson, line 6: not JSON"):
        fhir.load_fhir(root)


def test_resource_without_resource_type(tmp_path):
    root = ndjson_with(tmp_path, '{"id": "x1"}', name="Patient.ndjson")
    with pytest.raises(DataError, match=r"Patient\.ndjson, line 3.*field resourceType: no resourceType"):
        fhir.load_fhir(root)


def test_bad_base64_names_resource_and_field(tmp_path):
    bad = doc("d9", "p1", "e1", [{"contentType": "text/plain", "data": "not*base64!"}])
    root = ndjson_with(tmp_path, json.dumps(bad))
    with pytest.raises(DataError, match=r"line 6, resource DocumentReference/d9, field content\[0\]\.attachment\.data: "
                                        r"attachment data is not valid base64"):
        fhir.load_fhir(root)


def test_bad_date_and_bad_code(tmp_path):
    root = ndjson_with(tmp_path / "a", json.dumps(doc("d9", "p1", "e1", [{"data": b64("x")}], date="05/01/2150")))
    with pytest.raises(DataError, match=r"resource DocumentReference/d9, field date: unparseable date '05/01/2150'"):
        fhir.load_fhir(root)
    root = ndjson_with(tmp_path / "b", json.dumps(condition("c9", "p1", [(ICD10, "12345")])), name="Condition.ndjson")
    with pytest.raises(DataError, match=r"Condition\.ndjson, line 6, resource Condition/c9, field code\.coding\[0\]\.code"):
        fhir.load_fhir(root)


def test_duplicate_note_resource(tmp_path):
    root = ndjson_with(tmp_path, json.dumps(small_export()[10]))
    with pytest.raises(DataError, match=r"line 6, resource DocumentReference/d1: DocumentReference/d1 occurs twice "
                                        r"\(first at .*line 1\)"):
        fhir.load_fhir(root)


def test_bundle_errors_name_the_entry(tmp_path):
    write_bundles(tmp_path / "a", small_export(), n_bundles=1)
    path = tmp_path / "a" / "bundle0.json"
    text = path.read_text()
    cut = text.index('"resourceType": "Encounter"')  # inside entry 2 (Patient p1, Patient p2 before it)
    path.write_text(text[:cut] + "@@" + text[cut:])
    with pytest.raises(DataError, match=r"bundle0\.json: not valid JSON after entry 1 "):
        fhir.load_fhir(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}}, {"fullUrl": "urn:uuid:1"}]}))
    with pytest.raises(DataError, match=r"x\.json, entry 1, field entry\.resource"):
        fhir.load_fhir(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text(json.dumps({"transactionTime": "2150-01-01", "output": []}))
    with pytest.raises(DataError, match=r"manifest\.json, field resourceType: resourceType is None; expected a FHIR Bundle"):
        fhir.load_fhir(tmp_path / "c")


def test_missing_references_are_counted_and_nothing_linking_is_an_error(tmp_path):
    resources = [r for r in small_export() if r["resourceType"] not in ("Encounter", "Patient")]
    write_ndjson(tmp_path / "a", resources)
    # Encounter and Patient not exported: Condition.encounter still links d2 (N17.9); e1's diagnoses are lost
    notes, _, info = fhir.load_fhir(tmp_path / "a")
    assert notes["note_id"].tolist() == ["DocumentReference/d2"]
    assert info["references_missing_encounter"] == 5 and info["references_missing_patient"] == 6
    write_ndjson(tmp_path / "b", [r for r in small_export() if r["resourceType"] != "Condition"])
    with pytest.raises(DataError, match=r"no note links to a http://hl7.org/fhir/sid/icd-10-cm code .*"
                                        r"'notes_without_encounter': 1, 'notes_of_uncoded_encounters': 4"):
        fhir.load_fhir(tmp_path / "b")


def test_empty_exports(tmp_path):
    with pytest.raises(DataError, match="no .ndjson or .json files"):
        fhir.load_fhir(tmp_path)
    write_ndjson(tmp_path, [r for r in small_export() if r["resourceType"] in ("Patient", "Observation")])
    with pytest.raises(DataError, match=r"no note in the export \(resources read: \{'Patient': 2\}, ignored: "
                                        r"\{'Observation': 1\}"):
        fhir.load_fhir(tmp_path)
    with pytest.raises(DataError, match="folder not found"):
        fhir.load_fhir(tmp_path / "nope")
    with pytest.raises(DataError, match="data.fhir_labels='admission'"):
        fhir.load_fhir(tmp_path, labels="admission")


def test_bad_input_writes_nothing(tmp_path):
    root = ndjson_with(tmp_path / "data", '{"id": "x1"}')
    out = tmp_path / "run"
    with pytest.raises(DataError):
        sources.load_source("fhir", out, seed=0, n_patients=0, n_codes=0, data_dir=str(root), stream=True)
    assert not (out / "raw").exists() or not any((out / "raw").iterdir())


def test_run_all_exits_2_on_a_bad_export_naming_file_and_line(tmp_path):
    root = ndjson_with(tmp_path / "data", json.dumps(doc("d9", "p1", "e1", [{"data": "@@"}])))
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"), "--only", "01",
                           "--no-site", "--set", "data.source=fhir", f"data.dir={root}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "DataError" in proc.stderr and "DocumentReference.ndjson, line 6, resource DocumentReference/d9" in proc.stderr
    assert not (tmp_path / "o" / "raw" / "fhir_notes.parquet").exists() and not (tmp_path / "o" / "raw" / "source.json").exists()

