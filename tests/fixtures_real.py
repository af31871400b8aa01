"""Real-data-shaped fixtures, written into temporary folders by the tests (nothing downloaded,
no real data in the repository): the official file layouts and column names of MIMIC-III, MIMIC-IV(-Note)
and CodiEsp, and the generic `csv` source.

Two kinds of builders share the writers below:
* tiny hand-made tables (`write_small_mimic4`, `write_small_codiesp`) whose every value a loader test
  checks by hand (tests/test_loaders.py);
* `make_corpus` + `write_<source>_corpus`: a cohort large enough for the `ci` profile to run the whole
  suite (tests/test_real_sources_e2e.py): ~60 patients, a few hundred short notes built from a handful of
  template sentences that mention each admission's codes, so a few codes clear `cohort.min_train_count`.

Every corpus note carries a marker sentence from `MARKER_SENTENCES` and a unique tag `zx<4 digits>q`
(`NOTE_TAG`): the privacy test looks for them in everything a run renders.
"""
from __future__ import annotations

import gzip
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# ---------------------------------------------------------------------------------------------
# The official layouts: file names and columns, in the order of the real files
# ---------------------------------------------------------------------------------------------

MIMIC3_NOTEEVENTS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                     "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
MIMIC3_DIAGNOSES_ICD = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
MIMIC4_DISCHARGE = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"]
MIMIC4_DIAGNOSES_ICD = ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"]
CODIESP_TEXT_DIRS = {"es": "text_files", "en": "text_files_en"}


def write_gz_csv(path: Path, df: pd.DataFrame) -> Path:
    """A gzipped CSV as the MIMIC releases ship them (UTF-8, header, no index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
    return path


def _official(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`df` with exactly the official `columns`, in order; columns it lacks are empty."""
    extra = set(df.columns) - set(columns)
    if extra:
        raise ValueError(f"not official columns: {sorted(extra)}")
    return pd.DataFrame({c: df[c] if c in df else "" for c in columns})


def write_mimic3(root: Path, noteevents: pd.DataFrame, diagnoses: pd.DataFrame) -> Path:
    """<root>/NOTEEVENTS.csv.gz and <root>/DIAGNOSES_ICD.csv.gz (MIMIC-III v1.4)."""
    write_gz_csv(root / "NOTEEVENTS.csv.gz", _official(noteevents, MIMIC3_NOTEEVENTS))
    write_gz_csv(root / "DIAGNOSES_ICD.csv.gz", _official(diagnoses, MIMIC3_DIAGNOSES_ICD))
    return root


def write_mimic4(root: Path, discharge: pd.DataFrame, diagnoses: pd.DataFrame) -> Path:
    """<root>/note/discharge.csv.gz (MIMIC-IV-Note) and <root>/hosp/diagnoses_icd.csv.gz (MIMIC-IV)."""
    write_gz_csv(root / "note" / "discharge.csv.gz", _official(discharge, MIMIC4_DISCHARGE))
    write_gz_csv(root / "hosp" / "diagnoses_icd.csv.gz", _official(diagnoses, MIMIC4_DIAGNOSES_ICD))
    return root


def write_codiesp(root: Path, docs: dict[str, list[tuple[str, dict[str, str], list[str]]]],
                  background: dict[str, dict[str, str]] | None = None) -> Path:
    """The CodiEsp release: <root>/<split>/<text dir>/<doc>.txt for both languages and <root>/<split>/<split>D.tsv
    (doc id<TAB>code, no header). `docs[split]` = [(doc id, {language: text}, codes)]; `background` docs
    ({doc id: {language: text}}) go to test/ without codes, like the release's unannotated documents."""
    for split, items in docs.items():
        for doc, texts, _ in items:
            for language, text in texts.items():
                folder = root / split / CODIESP_TEXT_DIRS[language]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{doc}.txt").write_text(text, encoding="utf-8")
        rows = [f"{doc}\t{code}" for doc, _, codes in items for code in codes]
        (root / split / f"{split}D.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for doc, texts in (background or {}).items():
        for language, text in texts.items():
            folder = root / "test" / CODIESP_TEXT_DIRS[language]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{doc}.txt").write_text(text, encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------
# Tiny hand-made releases (tests/test_loaders.py checks every value)
# ---------------------------------------------------------------------------------------------

def write_small_mimic4(root: Path, text: str) -> Path:
    """Two patients, three discharge notes; admission 22595853 coded in ICD-9, the other two in ICD-10."""
    return write_mimic4(root, pd.DataFrame({
        "note_id": ["10000032-DS-21", "10000032-DS-22", "10000084-DS-17"], "subject_id": [10000032, 10000032, 10000084],
        "hadm_id": [22595853, 22841357, 23052089], "note_type": ["DS"] * 3, "note_seq": [21, 22, 17],
        "charttime": ["2180-05-07 00:00:00", "2180-06-27 00:00:00", "2160-11-25 00:00:00"],
        "storetime": ["2180-05-09 15:26:00"] * 3, "text": [text] * 3}), pd.DataFrame({
        "subject_id": [10000032, 10000032, 10000032, 10000084], "hadm_id": [22595853, 22595853, 22841357, 23052089],
        "seq_num": [1, 2, 1, 1], "icd_code": ["5723", "78959", "K7031", "G20"], "icd_version": [9, 9, 10, 10]}))


def write_small_codiesp(root: Path) -> Path:
    """Four coded documents (2 train, 1 dev, 1 test, codes r52 and n28.1) and one background test document."""
    ids = {"train": ["S0004-06142005000700014-1", "S0004-06142005000900013-1"], "dev": ["S0004-06142005001000011-1"],
           "test": ["S0004-06142006000100014-1"]}
    docs = {split: [(doc, {"es": f"Paciente con dolor torácico. {doc}\n", "en": f"Patient with chest pain. {doc}\n"},
                     ["r52", "n28.1"]) for doc in docs] for split, docs in ids.items()}
    return write_codiesp(root, docs, {"S1130-01082008000100012-1": {"en": "Background.\n", "es": "Fondo.\n"}})


# ---------------------------------------------------------------------------------------------
# A corpus for whole-suite runs
# ---------------------------------------------------------------------------------------------

#: (ICD-10-CM, ICD-9-CM, English mention, Spanish mention) of the conditions an admission can be coded with.
CONDITIONS = [
    ("I10", "4019", "essential hypertension treated with lisinopril", "hipertensión esencial tratada con lisinopril"),
    ("E11.9", "25000", "type 2 diabetes mellitus on metformin", "diabetes mellitus tipo 2 con metformina"),
    ("I50.9", "4280", "congestive heart failure with leg edema", "insuficiencia cardiaca congestiva con edema"),
    ("I48.91", "42731", "atrial fibrillation with rapid ventricular rate", "fibrilación auricular con respuesta rápida"),
    ("N17.9", "5849", "acute kidney injury with rising creatinine", "fracaso renal agudo con creatinina en ascenso"),
    ("J18.9", "486", "pneumonia with right lower lobe consolidation", "neumonía con consolidación del lóbulo inferior"),
    ("E78.5", "2724", "hyperlipidemia on atorvastatin", "hiperlipidemia en tratamiento con atorvastatina"),
    ("K21.9", "53081", "gastroesophageal reflux on omeprazole", "reflujo gastroesofágico con omeprazol"),
    ("Z79.01", "V5861", "long term anticoagulation with warfarin", "anticoagulación crónica con warfarina"),
    ("Y92.009", "E8490", "injury after a fall at home", "lesión tras una caída en el domicilio"),
]
#: Distinctive sentences, one in every corpus note: nothing a run renders may contain them (privacy test).
MARKER_SENTENCES = [
    "Quokka lantern protocol reviewed with the family at the bedside.",
    "Zephyr marmalade checklist completed before morning rounds.",
    "Bellwether origami consult was declined by the patient.",
    "Tangerine abacus precautions remain in place overnight.",
]
#: Every corpus note also carries a unique tag `zx<4 digits>q`.
NOTE_TAG = re.compile(r"zx\d{4}q")
FILLERS_EN = [
    "Patient seen and examined on the ward this morning.", "Vital signs stable, afebrile overnight.",
    "Labs reviewed and discussed with the team.", "Plan to continue current medications and monitor closely.",
    "Follow up with primary care in two weeks.", "Tolerating diet, ambulating with assistance.",
]
FILLERS_ES = [
    "Paciente valorado en planta esta mañana.", "Constantes estables, afebril durante la noche.",
    "Analítica revisada con el equipo.", "Se mantiene el tratamiento habitual con vigilancia estrecha.",
]
MIMIC3_CATEGORIES = ["Discharge summary", "Nursing/other", "Physician ", "Radiology"]


@dataclass
class Admission:
    patient: int
    hadm_id: int
    day: pd.Timestamp
    conditions: list[int]                      # indices into CONDITIONS
    notes: list[str] = field(default_factory=list)


def note_text(rng: random.Random, conditions: list[int], tag: int, spanish: bool = False) -> str:
    """A short note: fillers, a mention of (almost) every coded condition, a marker sentence, a unique tag."""
    fillers = FILLERS_ES if spanish else FILLERS_EN
    mentions = [CONDITIONS[c][3 if spanish else 2] for c in conditions if rng.random() < 0.9]  # some label noise
    history = ("Antecedentes de " if spanish else "History of ") + "; ".join(mentions) + "." if mentions else ""
    parts = [rng.choice(fillers), history, rng.choice(fillers), MARKER_SENTENCES[tag % len(MARKER_SENTENCES)],
             f"Record tag zx{tag:04d}q."]
    return " ".join(p for p in parts if p)


def make_corpus(n_patients: int = 60, admissions_per_patient: tuple[int, int] = (1, 3), notes_per_admission: int = 2,
                seed: int = 0) -> list[Admission]:
    """Patients with 1-3 admissions; each admission coded with 1-4 conditions (the first three most often)."""
    rng = random.Random(seed)
    weights = [6, 5, 4, 3, 3, 2, 2, 2, 2, 2]
    admissions, tag = [], 0
    for p in range(n_patients):
        for a in range(rng.randint(*admissions_per_patient)):
            k = rng.randint(1, 4)
            conditions = sorted(set(rng.choices(range(len(CONDITIONS)), weights=weights, k=k)))
            adm = Admission(p, 100000 + 10 * p + a, pd.Timestamp("2150-01-01") + pd.Timedelta(days=97 * p + 31 * a),
                            conditions)
            for _ in range(notes_per_admission):
                adm.notes.append(note_text(rng, conditions, tag))
                tag += 1
            admissions.append(adm)
    return admissions


def write_mimic3_corpus(root: Path, seed: int = 0) -> Path:
    """MIMIC-III: several note categories per admission, ICD-9 codes (V and E codes included), plus notes the
    loader must leave out (no HADM_ID, an uncoded admission) and an ISERROR note the type filter drops."""
    admissions = make_corpus(notes_per_admission=3, seed=seed)
    notes, diagnoses = [], []
    for adm in admissions:
        for i, text in enumerate(adm.notes):
            notes.append({"ROW_ID": len(notes) + 1, "SUBJECT_ID": 1000 + adm.patient, "HADM_ID": adm.hadm_id,
                          "CHARTDATE": (adm.day + pd.Timedelta(days=i)).strftime("%Y-%m-%d"),
                          "CATEGORY": MIMIC3_CATEGORIES[i % len(MIMIC3_CATEGORIES)], "DESCRIPTION": "Report",
                          "ISERROR": "1" if len(notes) % 50 == 7 else "", "TEXT": text})
        for seq, c in enumerate(adm.conditions, 1):
            diagnoses.append({"ROW_ID": len(diagnoses) + 1, "SUBJECT_ID": 1000 + adm.patient, "HADM_ID": adm.hadm_id,
                              "SEQ_NUM": seq, "ICD9_CODE": CONDITIONS[c][1]})
    rng = random.Random(seed + 1)
    for j, hadm in enumerate(["", 999999]):  # no admission; an admission without diagnosis codes
        notes.append({"ROW_ID": len(notes) + 1, "SUBJECT_ID": 1000, "HADM_ID": hadm, "CHARTDATE": "2150-01-02",
                      "CATEGORY": "ECG", "DESCRIPTION": "Report", "ISERROR": "",
                      "TEXT": note_text(rng, [0], 9000 + j)})
    return write_mimic3(root, pd.DataFrame(notes), pd.DataFrame(diagnoses))


def write_mimic4_corpus(root: Path, seed: int = 0) -> Path:
    """MIMIC-IV: one discharge note per admission; most admissions coded in ICD-10, every fifth in ICD-9
    (those notes are left out when data.icd_version=10)."""
    admissions = make_corpus(admissions_per_patient=(3, 5), notes_per_admission=1, seed=seed)
    notes, diagnoses = [], []
    for k, adm in enumerate(admissions):
        subject = 10000000 + adm.patient
        notes.append({"note_id": f"{subject}-DS-{k}", "subject_id": subject, "hadm_id": 20000000 + adm.hadm_id,
                      "note_type": "DS", "note_seq": k, "charttime": adm.day.strftime("%Y-%m-%d 00:00:00"),
                      "storetime": adm.day.strftime("%Y-%m-%d 15:26:00"), "text": adm.notes[0]})
        version = 9 if k % 5 == 4 else 10
        for seq, c in enumerate(adm.conditions, 1):
            code = CONDITIONS[c][0 if version == 10 else 1].replace(".", "")  # MIMIC-IV stores codes undotted
            diagnoses.append({"subject_id": subject, "hadm_id": 20000000 + adm.hadm_id, "seq_num": seq,
                              "icd_code": code, "icd_version": version})
    return write_mimic4(root, pd.DataFrame(notes), pd.DataFrame(diagnoses))


def write_codiesp_corpus(root: Path, seed: int = 0) -> Path:
    """CodiEsp: one clinical case per document, English and Spanish text, lower-case CIE-10 codes, the
    official train/dev/test folders (about 60/15/25 %) and two unannotated background documents in test/."""
    rng = random.Random(seed)
    weights = [6, 5, 4, 3, 3, 2, 2, 2, 2, 2]
    docs: dict[str, list] = {"train": [], "dev": [], "test": []}
    for i in range(180):
        conditions = sorted(set(rng.choices(range(len(CONDITIONS)), weights=weights, k=rng.randint(1, 4))))
        doc = f"S{1130 + i % 7:04d}-{rng.randrange(10**13, 10**14)}-{i % 3 + 1}"
        texts = {"en": note_text(rng, conditions, i), "es": note_text(rng, conditions, i, spanish=True)}
        split = "train" if i % 20 < 12 else "dev" if i % 20 < 15 else "test"
        docs[split].append((doc, texts, [CONDITIONS[c][0].lower() for c in conditions]))
    background = {f"S0211-69952009000{k}00012-1": {"en": note_text(rng, [0], 9100 + k),
                                                   "es": note_text(rng, [0], 9100 + k, spanish=True)} for k in range(2)}
    return write_codiesp(root, docs, background)


def write_csv_corpus(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """The generic source: notes.csv (patient_id, note_id, text, note_type, note_date) and codes.parquet keyed
    by (patient_id, note_date), so a day's codes go to every note of that patient written that day."""
    admissions = make_corpus(seed=seed)
    notes, codes = [], []
    for adm in admissions:
        for i, text in enumerate(adm.notes):
            notes.append({"patient_id": f"P{adm.patient:03d}", "note_id": f"N{len(notes):05d}", "text": text,
                          "note_type": "progress note", "note_date": adm.day.strftime("%Y-%m-%d")})
        codes += [{"patient_id": f"P{adm.patient:03d}", "note_date": adm.day.strftime("%Y-%m-%d"),
                   "code": CONDITIONS[c][0].replace(".", "")} for c in adm.conditions]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(notes).to_csv(root / "notes.csv", index=False)
    pd.DataFrame(codes).to_parquet(root / "codes.parquet", index=False)
    return root / "notes.csv", root / "codes.parquet"


def write_fhir_corpus(root: Path, seed: int = 0) -> Path:
    """A FHIR R4 export in both layouts: Bulk Data `Patient.ndjson`, `Encounter.ndjson`, `Condition.ndjson`,
    `DocumentReference.ndjson` (base64 text/plain, every third note as text/html) and a Bundle `compositions.json`
    of Composition notes (XHTML sections). Codes are ICD-10-CM Conditions, linked through Encounter.diagnosis
    for even admissions and only by Condition.encounter for odd ones, with a SNOMED coding beside each. The
    loader must leave out a note without an encounter, drop the Composition copy of the first admission's
    DocumentReference, and ignore an Observation file."""
    import base64
    import json

    def ref(key: str) -> dict:
        return {"reference": key}

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    admissions = make_corpus(seed=seed)
    patients, encounters, conditions, docs, compositions = [], [], [], [], []
    for adm in admissions:
        pid, eid = f"pat-{adm.patient:03d}", f"enc-{adm.hadm_id}"
        if not patients or patients[-1]["id"] != pid:
            patients.append({"resourceType": "Patient", "id": pid})
        cids = [f"cond-{adm.hadm_id}-{c}" for c in adm.conditions]
        encounter = {"resourceType": "Encounter", "id": eid, "status": "finished", "subject": ref(f"Patient/{pid}"),
                     "period": {"start": adm.day.strftime("%Y-%m-%d")}}
        if adm.hadm_id % 2 == 0:
            encounter["diagnosis"] = [{"condition": ref(f"Condition/{cid}"), "rank": r} for r, cid in enumerate(cids, 1)]
        encounters.append(encounter)
        for cid, c in zip(cids, adm.conditions):
            cond = {"resourceType": "Condition", "id": cid, "subject": ref(f"Patient/{pid}"),
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(38341003 + c)},
                                        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": CONDITIONS[c][0]}]}}
            if adm.hadm_id % 2 == 1:
                cond["encounter"] = ref(f"Encounter/{eid}")
            conditions.append(cond)
        for i, text in enumerate(adm.notes):
            date = (adm.day + pd.Timedelta(days=i)).strftime("%Y-%m-%dT08:00:00Z")
            if i == 0:
                html = len(docs) % 3 == 2
                data = f"<div><p>{text}</p></div>" if html else text
                docs.append({"resourceType": "DocumentReference", "id": f"doc-{adm.hadm_id}-{i}", "status": "current",
                             "subject": ref(f"Patient/{pid}"), "date": date,
                             "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3",
                                                  "display": "Progress note"}]},
                             "content": [{"attachment": {"contentType": "text/html" if html else "text/plain",
                                                         "data": b64(data)}}],
                             "context": {"encounter": [ref(f"Encounter/{eid}")]}})
            else:
                compositions.append({"resourceType": "Composition", "id": f"comp-{adm.hadm_id}-{i}", "status": "final",
                                     "subject": ref(f"Patient/{pid}"), "encounter": ref(f"Encounter/{eid}"),
                                     "date": date, "type": {"coding": [{"code": "18842-5", "display": "Discharge summary"}]},
                                     "title": "Discharge summary",
                                     "section": [{"title": "Hospital course", "text": {
                                         "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div>'}}]})
    first = docs[0]
    compositions.append({"resourceType": "Composition", "id": "comp-copy", "status": "final",
                         "subject": first["subject"], "encounter": first["context"]["encounter"][0],
                         "date": first["date"], "title": "", "section": [{"text": {
                             "div": f"<div>{base64.b64decode(first['content'][0]['attachment']['data']).decode()}</div>"}}]})
    rng = random.Random(seed + 1)
    docs.append({"resourceType": "DocumentReference", "id": "doc-no-encounter", "status": "current",
                 "subject": ref("Patient/pat-000"), "date": "2150-01-02",
                 "content": [{"attachment": {"contentType": "text/plain", "data": b64(note_text(rng, [0], 9000))}}]})
    root.mkdir(parents=True, exist_ok=True)
    for name, resources in (("Patient", patients), ("Encounter", encounters), ("Condition", conditions),
                            ("DocumentReference", docs),
                            ("Observation", [{"resourceType": "Observation", "id": "obs-1", "status": "final"}])):
        (root / f"{name}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in compositions]}
    (root / "compositions.json").write_text(json.dumps(bundle), encoding="utf-8")
    return root
