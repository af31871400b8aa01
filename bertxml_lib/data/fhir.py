"""Notebook 01 — HL7 FHIR R4 exports (`data.source=fhir`): notes from DocumentReference and Composition, ICD
codes from Condition, linked through the Encounter (paper 4.1 labels a note with its encounter's codes).

`data.dir` holds Bulk Data NDJSON files (`<ResourceType>*.ndjson[.gz]`, one resource a line) and/or Bundle
files (`*.json[.gz]`, read entry by entry with ijson), so a million-note export is never parsed whole: the
small fields of each note stay in memory, the texts are spilled to a temporary Parquet file in batches.

| FHIR field                                                      | raw-source column          |
|-----------------------------------------------------------------|----------------------------|
| `DocumentReference/<id>`, `Composition/<id>`                    | notes.note_id              |
| `subject` (Patient reference, `Patient/` dropped)               | notes.patient_id           |
| `date`, else `context.period.start` (DocumentReference)         | notes.note_date            |
| `type.coding[0].display`, else `.code`, else `type.text`        | notes.note_type            |
| DocumentReference `content[].attachment.data` (base64; text/plain first, else text/html or XHTML as text); Composition `title`, `section[].title` + `section[].text.div` | notes.text |
| `context.encounter[0]` (DocumentReference), `encounter` (Composition) | the note's encounter |
| `Condition.code.coding[]` of system icd-10-cm (icd-9-cm for `data.icd_version=9`) | codes.code |
| `Encounter.diagnosis[].condition` and/or `Condition.encounter`  | which encounter a code belongs to |

Labels (`data.fhir_labels`): `encounter` gives a note every code of its encounter; `patient_period` gives it every
code of its patient's Conditions whose onset–abatement period (by day; no abatement = still active) covers the
note's date. A note that links to no code has unknown labels: left out and counted, as for MIMIC. A note whose
status is `entered-in-error` becomes note_type `erroneous` (the cohort's type filter drops it); refuted or
entered-in-error Conditions give no code. When one encounter holds a Composition and a DocumentReference with
the same text (whitespace collapsed), the DocumentReference (the filed document) is kept. References resolve by
`Type/id` (absolute URLs to their last two segments) or by a Bundle entry's `fullUrl` (`urn:uuid:...`).
"""
from __future__ import annotations

import hashlib
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.data.fhir_read import (
    USED_TYPES,
    Where,
    attachment_text,
    bundle_resources,
    canonical,
    composition_text,
    concept_name,
    export_files,
    ndjson_resources,
    parse_date,
    reference,
)
from bertxml_lib.data.loaders import DEFAULT_NOTE_TYPE, finish_codes, normalize_code
from bertxml_lib.data.validation import DataError

ICD_SYSTEMS = {10: "http://hl7.org/fhir/sid/icd-10-cm", 9: "http://hl7.org/fhir/sid/icd-9-cm"}
LABEL_MODES = ("encounter", "patient_period")
NOTE_TYPES = ("DocumentReference", "Composition")
NOT_A_DIAGNOSIS = {"entered-in-error", "refuted"}
#: Note text held in memory before a batch is spilled to the temporary Parquet file.
SPILL_BYTES = 16 << 20


# ---------------------------------------------------------------------------------------------
# Collecting: small fields of notes in memory, texts spilled to Parquet; Conditions, Encounters, Patients
# ---------------------------------------------------------------------------------------------

class _Export:
    """What one pass over the export keeps."""

    def __init__(self, spill_path: Path, icd_version: int):
        self.system = ICD_SYSTEMS[icd_version]
        self.icd_version = icd_version
        self.notes: dict[str, list] = {k: [] for k in ("note_id", "patient", "note_date", "note_type", "encounter",
                                                       "kind", "digest")}
        self.where: dict[str, Where] = {}            # note id -> where it was read (duplicate ids)
        self.conditions: dict[str, tuple] = {}       # key -> (codes, encounter ref, patient ref, onset, abatement)
        self.diagnoses: list[tuple[str, str]] = []   # (encounter key, condition reference)
        self.present: dict[str, set[str]] = {"Encounter": set(), "Patient": set()}
        self.alias: dict[str, str] = {}              # Bundle fullUrl -> key
        self.counts: Counter = Counter()
        self.resources: Counter = Counter()
        self.ignored: Counter = Counter()
        self.other_systems: Counter = Counter()
        self._spill, self._texts, self._rows, self._bytes, self._writer = spill_path, [], [], 0, None

    def add(self, resource, where: Where) -> None:
        if not isinstance(resource, dict):
            raise where.error(f"expected a FHIR resource (a JSON object), got {type(resource).__name__}")
        rtype, rid = resource.get("resourceType"), resource.get("id")
        where.rid = f"{rtype}/{rid}" if rid else str(resource.get("_fullUrl") or "")
        if not isinstance(rtype, str) or not rtype:
            raise where.error("no resourceType; expected every resource to name its resourceType", "resourceType")
        if rtype not in USED_TYPES:
            self.ignored[rtype] += 1
            return
        if rid is not None and not isinstance(rid, str):
            raise where.error(f"expected a string id, got {rid!r}", "id")
        key = f"{rtype}/{rid}" if rid else resource.get("_fullUrl")
        if not key:
            raise where.error("no id (and no Bundle fullUrl); expected an id to reference the resource by", "id")
        if resource.get("_fullUrl"):
            self.alias[resource["_fullUrl"]] = key
        self.resources[rtype] += 1
        if rtype in NOTE_TYPES:
            self._add_note(rtype, key, resource, where)
        elif rtype == "Condition":
            self._add_condition(key, resource, where)
        else:
            self.present[rtype].add(key)
            if rtype == "Encounter":
                for i, dx in enumerate(resource.get("diagnosis") or []):
                    ref = reference(dx.get("condition") if isinstance(dx, dict) else dx, where, f"diagnosis[{i}].condition")
                    if ref:
                        self.diagnoses.append((key, ref))

    def _add_note(self, rtype: str, key: str, r: dict, where: Where) -> None:
        if key in self.where:
            first = self.where[key]
            raise where.error(f"{key} occurs twice (first at {first.path}, "
                              f"{'line ' + str(first.line) if first.line is not None else 'entry ' + str(first.entry)}); "
                              "expected each note resource once")
        if rtype == "DocumentReference":
            text = attachment_text(r.get("content") or [], where, self.counts)
            context = r.get("context") or {}
            encounters = context.get("encounter") if isinstance(context, dict) else None
            encounter = reference((encounters or [None])[0] if isinstance(encounters, list) else encounters, where,
                             "context.encounter")
            date = parse_date(r.get("date"), where, "date")
            if pd.isna(date) and isinstance(context, dict):
                date = parse_date((context.get("period") or {}).get("start"), where, "context.period.start")
        else:
            text = composition_text(r)
            encounter = reference(r.get("encounter"), where, "encounter")
            date = parse_date(r.get("date"), where, "date")
        patient = reference(r.get("subject"), where, "subject")
        if not text.strip():
            self.counts["notes_without_text"] += 1
            return
        if not patient:
            self.counts["notes_without_subject"] += 1
            return
        self.where[key] = where
        note_type = "erroneous" if r.get("status") == "entered-in-error" else concept_name(r.get("type")) or DEFAULT_NOTE_TYPE
        for col, value in (("note_id", key), ("patient", patient), ("note_date", date), ("note_type", note_type),
                           ("encounter", encounter), ("kind", rtype),
                           ("digest", hashlib.sha1(" ".join(text.split()).encode()).digest())):
            self.notes[col].append(value)
        self._texts.append(text)
        self._rows.append(len(self.notes["note_id"]) - 1)
        self._bytes += len(text)
        if self._bytes >= SPILL_BYTES:
            self.flush()

    def _add_condition(self, key: str, r: dict, where: Where) -> None:
        status = {c.get("code") for c in ((r.get("verificationStatus") or {}).get("coding") or []) if isinstance(c, dict)}
        if status & NOT_A_DIAGNOSIS:  # kept without codes, so Encounter.diagnosis references to it still resolve
            self.counts["conditions_refuted_or_in_error"] += 1
            self.conditions[key] = ((), "", "", pd.NaT, pd.NaT)
            return
        codes = []
        for i, coding in enumerate((r.get("code") or {}).get("coding") or []):
            system = str(coding.get("system") or "") if isinstance(coding, dict) else ""
            if system != self.system:
                self.other_systems[system or "(no system)"] += 1
                continue
            try:
                codes.append(normalize_code(str(coding.get("code") or ""), self.icd_version))
            except ValueError as exc:
                raise where.error(f"{exc} (system {system})", f"code.coding[{i}].code") from None
        onset = parse_date(r.get("onsetDateTime") or (r.get("onsetPeriod") or {}).get("start"), where, "onset")
        abatement = parse_date(r.get("abatementDateTime") or (r.get("abatementPeriod") or {}).get("end"), where,
                               "abatement")
        self.conditions[key] = (tuple(codes), reference(r.get("encounter"), where, "encounter"),
                                reference(r.get("subject"), where, "subject"), onset, abatement)

    def flush(self) -> None:
        if not self._texts:
            return
        batch = pa.record_batch([pa.array(self._rows, pa.int64()), pa.array(self._texts, pa.string())],
                                names=["row", "text"])
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._spill, batch.schema)
        self._writer.write_batch(batch)
        self._texts, self._rows, self._bytes = [], [], 0

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()


# ---------------------------------------------------------------------------------------------
# Linking notes to codes, and the raw-source tables
# ---------------------------------------------------------------------------------------------

def _encounter_codes(export: _Export, canon) -> dict[str, set[str]]:
    """Encounter key -> ICD codes, through Condition.encounter and Encounter.diagnosis[].condition."""
    enc_codes: dict[str, set[str]] = defaultdict(set)
    for codes, enc_ref, _, _, _ in export.conditions.values():
        if codes and enc_ref:
            enc_codes[canon(enc_ref)].update(codes)
            export.counts["conditions_missing_encounter"] += canon(enc_ref) not in export.present["Encounter"]
    for enc_key, cond_ref in export.diagnoses:
        cond = export.conditions.get(canon(cond_ref))
        if cond is None:
            export.counts["diagnoses_missing_condition"] += 1
        else:
            enc_codes[enc_key].update(cond[0])
    return enc_codes


def _period_codes(export: _Export, canon, patients: list[str], dates: pd.Series) -> list[set[str]]:
    """Per note, the codes of its patient's Conditions whose onset-abatement period covers the note's day."""
    spans = defaultdict(list)
    for codes, _, patient, onset, abatement in export.conditions.values():
        if codes and patient:
            if pd.isna(onset):
                export.counts["conditions_without_onset"] += 1
                continue
            spans[canon(patient)].append((onset.normalize(), abatement.normalize() if pd.notna(abatement) else None, codes))
    out = []
    for patient, date in zip(patients, dates):
        day = date.normalize() if pd.notna(date) else None
        out.append({c for onset, end, codes in spans.get(patient, ()) if day is not None and onset <= day
                    and (end is None or day <= end) for c in codes})
    return out


def _link(export: _Export, labels: str) -> tuple[pd.DataFrame, list[set[str]], dict]:
    """The notes' small fields, each note's codes, and the keep mask's counts."""
    canon = lambda ref: canonical(ref, export.alias) if ref else ""
    meta = pd.DataFrame(export.notes)
    meta["enc"] = [canon(r) for r in meta["encounter"]]
    meta["patient_key"] = [canon(r) for r in meta["patient"]]
    has_enc = meta["enc"] != ""
    is_doc = meta["kind"] == "DocumentReference"
    filed = set(zip(meta["enc"][is_doc & has_enc], meta["digest"][is_doc & has_enc]))
    dup = (~is_doc & has_enc & pd.Series([(e, d) in filed for e, d in zip(meta["enc"], meta["digest"])])).to_numpy()
    info = {"notes_read": len(meta), "duplicates_dropped": int(dup.sum()),
            "references_missing_encounter": int((has_enc & ~meta["enc"].isin(export.present["Encounter"])).sum()),
            "references_missing_patient": int((~meta["patient_key"].isin(export.present["Patient"])).sum())}
    if labels == "encounter":
        enc_codes = _encounter_codes(export, canon)
        codes = [enc_codes.get(e, set()) if e else set() for e in meta["enc"]]
        coded = pd.Series([bool(c) for c in codes]).to_numpy()
        info["notes_without_encounter"] = int((~dup & ~has_enc).sum())
        info["notes_of_uncoded_encounters"] = int((~dup & has_enc & ~coded).sum())
    else:
        codes = _period_codes(export, canon, meta["patient_key"].tolist(), meta["note_date"])
        coded = pd.Series([bool(c) for c in codes]).to_numpy()
        info["notes_without_date"] = int((~dup & meta["note_date"].isna()).sum())
        info["notes_without_active_condition"] = int((~dup & meta["note_date"].notna() & ~coded).sum())
    meta["keep"] = ~dup & coded
    return meta, codes, info


def _note_frame(meta: pd.DataFrame, rows, texts) -> pd.DataFrame:
    part = meta.iloc[rows]
    return pd.DataFrame({
        "patient_id": part["patient_key"].str.replace(r"^Patient/", "", regex=True).to_numpy(),
        "note_id": part["note_id"].to_numpy(),
        "note_date": pd.to_datetime(part["note_date"]).astype("datetime64[ns]").to_numpy(),
        "note_type": part["note_type"].to_numpy(),
        "text": texts,
    })


def _write_notes(spill: Path, meta: pd.DataFrame, notes_out: Path | None) -> pd.DataFrame | Path:
    """The kept notes, read back batch by batch from the spill: a DataFrame, or a Parquet file at `notes_out`
    written atomically (the texts never all in memory)."""
    keep = meta["keep"].to_numpy()

    def frames():
        for batch in pq.ParquetFile(spill).iter_batches(batch_size=8192):
            rows = batch.column("row").to_numpy()
            mask = keep[rows]
            yield _note_frame(meta, rows[mask], batch.column("text").filter(pa.array(mask)).to_pylist())

    if notes_out is None:
        return pd.concat(frames(), ignore_index=True)
    with atomic_path(notes_out) as tmp:
        writer = None
        for frame in frames():
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
    return notes_out


def load_fhir(data_dir: str | Path, icd_version: int = 10, labels: str = "encounter",
              notes_out: str | Path | None = None) -> tuple[pd.DataFrame | Path, pd.DataFrame, dict]:
    """data.source=fhir: (notes, codes, info) of a FHIR R4 export folder. With `notes_out`, the notes are
    written there (Parquet, atomically) and its path is returned in place of the DataFrame."""
    if icd_version not in ICD_SYSTEMS:
        raise DataError(f"data.icd_version={icd_version!r}: expected 9 or 10 for FHIR (systems {ICD_SYSTEMS})")
    if labels not in LABEL_MODES:
        raise DataError(f"data.fhir_labels={labels!r}: expected one of {list(LABEL_MODES)}")
    root = Path(data_dir).expanduser()
    if not str(data_dir) or not root.is_dir():
        raise DataError(f"data.dir={str(data_dir)!r}: folder not found (expected data.dir = a folder of FHIR Bulk "
                        "Data .ndjson files and/or Bundle .json files)")
    files = export_files(root)
    if not files:
        raise DataError(f"{root}: no .ndjson or .json files; expected a FHIR export (Bulk Data <ResourceType>.ndjson "
                        "files and/or Bundle .json files)")
    notes_out = Path(notes_out) if notes_out is not None else None
    if notes_out is not None:  # the spill goes beside the output: same disk, renamed into place
        notes_out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fhir_", dir=notes_out.parent if notes_out else None) as tmp:
        export = _Export(Path(tmp) / "texts.parquet", icd_version)
        try:
            for path in files:
                reader = ndjson_resources(path, export.ignored) if ".ndjson" in path.name else bundle_resources(path)
                for resource, where in reader:
                    export.add(resource, where)
        finally:
            export.close()
        found = (f"resources read: {dict(export.resources) or 'none'}, ignored: {dict(export.ignored) or 'none'}, "
                 f"{dict(export.counts) or 'nothing else'}")
        if not export.notes["note_id"]:
            raise DataError(f"{root}: no note in the export ({found}); expected DocumentReference or Composition "
                            "resources with text and a subject")
        meta, codes, info = _link(export, labels)
        if not meta["keep"].any():
            raise DataError(f"{root}: no note links to a {export.system} code ({info}; {found}; codings of other "
                            f"systems: {dict(export.other_systems) or 'none'}); expected Conditions of that system "
                            f"linked by {'encounter' if labels == 'encounter' else 'patient and onset'} "
                            "(check data.icd_version and data.fhir_labels)")
        note_ids = meta["note_id"].tolist()
        code_rows = pd.DataFrame([(note_ids[i], c) for i in meta.index[meta["keep"]] for c in sorted(codes[i])],
                                 columns=["note_id", "code"])
        notes = _write_notes(export._spill, meta, notes_out)
    info.update({"notes": int(meta["keep"].sum()), "icd_version": icd_version, "fhir_labels": labels,
                 "resources": dict(sorted(export.resources.items())),
                 "resources_ignored": dict(sorted(export.ignored.items())),
                 "codings_other_system": dict(sorted(export.other_systems.items())),
                 **dict(sorted(export.counts.items())), "files": [str(root)]})
    return notes, finish_codes(code_rows), info
