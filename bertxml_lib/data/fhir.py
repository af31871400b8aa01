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

import base64
import binascii
import gzip
import hashlib
import json
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import ijson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.data.loaders import DEFAULT_NOTE_TYPE, finish_codes, normalize_code
from bertxml_lib.data.validation import DataError

ICD_SYSTEMS = {10: "http://hl7.org/fhir/sid/icd-10-cm", 9: "http://hl7.org/fhir/sid/icd-9-cm"}
LABEL_MODES = ("encounter", "patient_period")
USED_TYPES = ("DocumentReference", "Composition", "Condition", "Encounter", "Patient")
NOTE_TYPES = ("DocumentReference", "Composition")
HTML_TYPES = ("text/html", "application/xhtml+xml")
NOT_A_DIAGNOSIS = {"entered-in-error", "refuted"}
#: Note text held in memory before a batch is spilled to the temporary Parquet file.
SPILL_BYTES = 16 << 20
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?)?)?"
                   r"(?:Z|[+-]\d{2}:\d{2})?$")
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"}


# ---------------------------------------------------------------------------------------------
# Reading: every resource of the export with where it was found (file, line or entry index)
# ---------------------------------------------------------------------------------------------

class _Where:
    """Where a resource was read, for error messages: file, NDJSON line or Bundle entry index, resource id."""

    def __init__(self, path: Path, line: int | None = None, entry: int | None = None, rid: str = ""):
        self.path, self.line, self.entry, self.rid = path, line, entry, rid

    def error(self, problem: str, field: str = "") -> DataError:
        at = f"line {self.line}" if self.line is not None else f"entry {self.entry}" if self.entry is not None else ""
        parts = [str(self.path)] + [p for p in (at, f"resource {self.rid}" if self.rid else "",
                                                  f"field {field}" if field else "") if p]
        return DataError(f"{', '.join(parts)}: {problem}")


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def export_files(root: Path) -> list[Path]:
    """The NDJSON and Bundle files of an export folder (sorted, sub-folders included)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith((".ndjson", ".ndjson.gz", ".json", ".json.gz")))


def _ndjson_resources(path: Path, skipped: Counter) -> Iterator[tuple[dict, _Where]]:
    """One resource a line. A Bulk Data file holds one resource type: when its first resource is of a type
    this source does not use and the file is named after that type, the rest is counted, not parsed."""
    with _open(path) as fh:
        first, first_type = True, None
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            if first_type is not None:
                skipped[first_type] += 1
                continue
            where = _Where(path, line=n)
            try:
                resource = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise where.error(f"not JSON ({exc}); expected one FHIR resource (a JSON object) per line") from None
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            if first and isinstance(rtype, str) and rtype and rtype not in USED_TYPES and path.name.startswith(rtype):
                first_type = rtype
                skipped[rtype] += 1
                continue
            first = False
            yield resource, where


def _bundle_resources(path: Path) -> Iterator[tuple[dict, _Where]]:
    """`entry[].resource` of a Bundle, one entry at a time (ijson), with the entry's fullUrl as `_fullUrl`."""
    index = -1  # the last entry read whole
    try:
        with _open(path) as fh:
            kind = next(ijson.items(fh, "resourceType"), None)
        if kind != "Bundle":
            raise _Where(path).error(f"resourceType is {kind!r}; expected a FHIR Bundle (a .json file of data.dir "
                                     "holds one Bundle; Bulk Data files end in .ndjson)", "resourceType")
        with _open(path) as fh:
            for index, entry in enumerate(ijson.items(fh, "entry.item", use_float=True)):
                where = _Where(path, entry=index)
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict):
                    raise where.error("expected an object with a 'resource'", "entry.resource")
                if entry.get("fullUrl"):
                    resource = {**resource, "_fullUrl": str(entry["fullUrl"])}
                yield resource, where
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        at = f"after entry {index} (entries counted from 0)" if index >= 0 else "before the first complete entry"
        raise DataError(f"{path}: not valid JSON {at} ({exc}); expected a FHIR Bundle (UTF-8 JSON)") from None


# ---------------------------------------------------------------------------------------------
# Fields: dates, references, codeable concepts, text
# ---------------------------------------------------------------------------------------------

def parse_date(value, where: _Where, field: str) -> pd.Timestamp:
    """A FHIR date/dateTime/instant ('2150', '2150-03', '2150-03-04T10:20:00+01:00') as the local clock
    time it names (the offset dropped, as every other source keeps local times); missing -> NaT."""
    if value is None or value == "":
        return pd.NaT
    m = _DATE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise where.error(f"unparseable date {value!r}; expected a FHIR dateTime such as 2150-03-04 or "
                          "2150-03-04T10:20:00Z", field)
    y, mo, d, hh, mi, ss = m.groups()
    try:
        return pd.Timestamp(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise where.error(f"invalid date {value!r} ({exc})", field) from None


def _ref(value, where: _Where, field: str) -> str:
    """The `reference` string of a Reference ('' when absent)."""
    if value is None:
        return ""
    if not isinstance(value, dict) or not isinstance(value.get("reference", ""), str):
        raise where.error(f"expected a Reference object with a 'reference' string, got {value!r:.80}", field)
    return value.get("reference", "").strip()


def canonical(ref: str, alias: dict[str, str]) -> str:
    """'Type/id' for a relative or absolute reference; a Bundle's `urn:uuid:` fullUrl through `alias`."""
    if ref in alias:
        return alias[ref]
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and not ref.startswith("urn:") else ref


def concept_name(concept) -> str:
    """A CodeableConcept's first coding display, else its code, else its text."""
    if not isinstance(concept, dict):
        return ""
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict):
            return str(coding.get("display") or coding.get("code") or "").strip()
    return str(concept.get("text") or "").strip()


class _TextExtractor(HTMLParser):
    """XHTML/HTML -> plain text: block elements start new lines, script and style are dropped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an XHTML narrative, lines trimmed and blank runs collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def attachment_text(content, where: _Where, counts: Counter) -> str:
    """The text of a DocumentReference: the first text/plain attachment with data, else the first HTML/XHTML
    one. Attachments with only a `url`, or of other types (PDF, images), are counted and skipped."""
    if not isinstance(content, list):
        raise where.error(f"expected a list of content items, got {type(content).__name__}", "content")
    found: dict[str, str] = {}
    for i, item in enumerate(content):
        att = item.get("attachment") if isinstance(item, dict) else None
        if not isinstance(att, dict):
            raise where.error("expected an object with an 'attachment'", f"content[{i}].attachment")
        ctype = str(att.get("contentType") or "text/plain").split(";")[0].strip().lower()
        if "data" not in att:
            counts["attachments_url_only" if att.get("url") else "attachments_empty"] += 1
            continue
        if ctype != "text/plain" and ctype not in HTML_TYPES:
            counts["attachments_other_type"] += 1
            continue
        try:
            raw = base64.b64decode(str(att["data"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise where.error(f"attachment data is not valid base64 ({exc})", f"content[{i}].attachment.data") from None
        charset = re.search(r"charset=([\w-]+)", str(att.get("contentType") or ""))
        try:
            text = raw.decode(charset.group(1) if charset else "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise where.error(f"attachment text cannot be decoded ({exc}); expected UTF-8 or the contentType's "
                              "charset", f"content[{i}].attachment.data") from None
        found.setdefault("plain" if ctype == "text/plain" else "html", text)
    if "plain" in found:
        return found["plain"]
    return html_to_text(found["html"]) if "html" in found else ""


def composition_text(resource: dict) -> str:
    """Title, then each section's title and narrative (nested sections in order); the resource narrative when
    there are no sections."""
    lines = [str(resource.get("title") or "").strip()]

    def walk(sections):
        for s in sections or []:
            if isinstance(s, dict):
                lines.append(str(s.get("title") or "").strip())
                lines.append(html_to_text(str((s.get("text") or {}).get("div") or "")))
                walk(s.get("section"))

    walk(resource.get("section"))
    if not resource.get("section"):
        lines.append(html_to_text(str((resource.get("text") or {}).get("div") or "")))
    return "\n".join(line for line in lines if line)


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
        self.where: dict[str, _Where] = {}           # note id -> where it was read (duplicate ids)
        self.conditions: dict[str, tuple] = {}       # key -> (codes, encounter ref, patient ref, onset, abatement)
        self.diagnoses: list[tuple[str, str]] = []   # (encounter key, condition reference)
        self.present: dict[str, set[str]] = {"Encounter": set(), "Patient": set()}
        self.alias: dict[str, str] = {}              # Bundle fullUrl -> key
        self.counts: Counter = Counter()
        self.resources: Counter = Counter()
        self.ignored: Counter = Counter()
        self.other_systems: Counter = Counter()
        self._spill, self._texts, self._rows, self._bytes, self._writer = spill_path, [], [], 0, None

    def add(self, resource, where: _Where) -> None:
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
                    ref = _ref(dx.get("condition") if isinstance(dx, dict) else dx, where, f"diagnosis[{i}].condition")
                    if ref:
                        self.diagnoses.append((key, ref))

    def _add_note(self, rtype: str, key: str, r: dict, where: _Where) -> None:
        if key in self.where:
            first = self.where[key]
            raise where.error(f"{key} occurs twice (first at {first.path}, "
                              f"{'line ' + str(first.line) if first.line is not None else 'entry ' + str(first.entry)}); "
                              "expected each note resource once")
        if rtype == "DocumentReference":
            text = attachment_text(r.get("content") or [], where, self.counts)
            context = r.get("context") or {}
            encounters = context.get("encounter") if isinstance(context, dict) else None
            encounter = _ref((encounters or [None])[0] if isinstance(encounters, list) else encounters, where,
                             "context.encounter")
            date = parse_date(r.get("date"), where, "date")
            if pd.isna(date) and isinstance(context, dict):
                date = parse_date((context.get("period") or {}).get("start"), where, "context.period.start")
        else:
            text = composition_text(r)
            encounter = _ref(r.get("encounter"), where, "encounter")
            date = parse_date(r.get("date"), where, "date")
        patient = _ref(r.get("subject"), where, "subject")
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

    def _add_condition(self, key: str, r: dict, where: _Where) -> None:
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
        self.conditions[key] = (tuple(codes), _ref(r.get("encounter"), where, "encounter"),
                                _ref(r.get("subject"), where, "subject"), onset, abatement)

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
                reader = _ndjson_resources(path, export.ignored) if ".ndjson" in path.name else _bundle_resources(path)
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
