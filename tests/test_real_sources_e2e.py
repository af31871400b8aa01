"""The whole suite (`run_all.py --profile ci`) on real-data-shaped fixtures — MIMIC-III (ICD-9),
MIMIC-IV (ICD-10 with ICD-9 rows present), CodiEsp (official split) and a FHIR R4 export — and the privacy
guarantee.

The fixtures (tests/fixtures_real.py) have the official file layouts and column names, built in temporary
folders. Runs are kept short with `--set` (one epoch, the XML head at 512 only, no off-the-shelf rows);
every notebook still executes. The MIMIC-III and FHIR runs also serve the privacy test: with `data.source` not
synthetic and `render.show_text` left at `auto`, no rendered output may contain note text. It scans every
file under the run folder (executed notebooks, HTML site, tables, figures, JSON, logs) and run_all's
console output for the fixture's marker sentences and unique note tags, except the data folders
`cohort/`, `raw/`, `tokenizer/`, `models/`, `predictions/` and `.cache/`: they hold the notes, the
vocabulary and model weights themselves (data, not rendered output). PNG figures cannot be scanned for
rasterised words, so the test checks that the figure code got `show_text=False`: the executed notebooks'
injected `render_show_text` and the resolved flag they print.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import REPO
from fixtures_real import (
    MARKER_SENTENCES,
    NOTE_TAG,
    write_codiesp_corpus,
    write_fhir_corpus,
    write_mimic3_corpus,
    write_mimic4_corpus,
)

from bertxml_lib.core import config

pytestmark = pytest.mark.e2e

DATA_FOLDERS = ("cohort", "raw", "tokenizer", "models", "predictions", ".cache")


def short_run_sets() -> list[str]:
    """Every notebook runs, each as little as it can: one epoch, one Table 2 row of each kind."""
    sets = ["pretrain.epochs=1", "pretrain.max_len=512", "finetune.epochs=1", "finetune.variants=[xml]",
            "finetune.max_lens=[512]", "cohort.min_train_count=8", "analysis.n_bootstrap=20",
            "evidence.n_bootstrap=20"]
    flat = config.resolve("ci")
    for key, value in (("offshelf.rows", "[]"), ("finetune.extra_heads", "[]"), ("baselines.models", "[logreg]"),
                       ("scaling.models", "[prior,logreg]")):
        if key in flat:  # the synthetic ci run (test_e2e) covers these rows
            sets.append(f"{key}={value}")
    return sets


def run_suite(out, *sets: str, site: bool = False) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), "--set",
                           *short_run_sets(), *sets, *([] if site else ["--no-site"])],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"\n{out.name}: whole suite in {seconds:.0f}s")
    return proc, seconds


def check_whole_suite(out, source: str, icd_version: int) -> dict:
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert {n["status"] for n in manifest["notebooks"]} == {"executed"}
    assert [n["name"][:2] for n in manifest["notebooks"]][:8] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert manifest["parameters"]["data.source"] == source and manifest["parameters"]["render.show_text"] is False
    table2 = pd.read_csv(out / "tables" / "table2.csv")
    assert {"logreg_512", "ehr_tiny_xml_512"} <= set(table2["model"])
    assert table2["micro_auc"].between(0.0, 1.0).all()
    for rel in ("tables/table3_low_frequency.csv", "tables/table4_per_code.csv", "tables/confused_pairs.csv",
                "tables/paper_vs_reproduced.csv", "tables/cohort_stats.csv", "figures/figure1_mlm_example.png",
                "figures/figure3_xml_attention.html", "figures/figure4_attention_heads.png"):
        assert (out / rel).exists(), rel
    label_set = json.loads((out / "cohort" / "label_set.json").read_text())
    assert label_set["icd_version"] == icd_version and len(label_set["codes"]) >= 3
    assert json.loads((out / "raw" / "source.json").read_text())["source"] == source
    return label_set


# Base64 images inside notebooks and HTML pages: random letters that can spell a tag (`zx7949q` did, once).
# Rasters are checked separately (the figure code must be told to hide text).
EMBEDDED_IMAGE = re.compile(r'("image/[a-z+]+":\s*)"[A-Za-z0-9+/=\\n]*"|base64,[A-Za-z0-9+/=]+')


def strip_embedded_images(text: str) -> str:
    return EMBEDDED_IMAGE.sub(lambda m: (m.group(1) or "") + '""', text)


def test_strip_embedded_images_keeps_text_around_images():
    text = '{"image/png": "iVBORzx7949q\\n==", "text/plain": "zx0001q"} <img src="data:image/png;base64,AAzx1234qB=">'
    stripped = strip_embedded_images(text)
    assert NOTE_TAG.findall(stripped) == ["zx0001q"]


# ---------------------------------------------------------------------------------------------
# MIMIC-III: ICD-9 labels end to end, and the privacy scan
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mimic3_run(tmp_path_factory):
    data = write_mimic3_corpus(tmp_path_factory.mktemp("mimic3_data"))
    out = tmp_path_factory.mktemp("mimic3_run")
    proc, _ = run_suite(out, "data.source=mimic3", f"data.dir={data}", site=True)
    return out, proc


def test_mimic3_runs_the_whole_suite_on_icd9_labels(mimic3_run):
    out, _ = mimic3_run
    label_set = check_whole_suite(out, "mimic3", icd_version=9)
    assert "401.9" in label_set["codes"] and label_set["descriptions"]["401.9"] == "Unspecified essential hypertension"
    assert "V58.61" in label_set["codes"]  # V codes keep their own category
    confused = pd.read_csv(out / "tables" / "confused_pairs.csv", dtype={"code": str, "confused_with": str})
    assert confused["code"].isin(label_set["codes"]).all()
    stats = pd.read_csv(out / "tables" / "cohort_stats.csv").set_index("quantity")["ours"]
    assert stats["imputed chronic code rows"].startswith("n.a.")  # no chronic imputation on ICD-9 labels


@pytest.fixture(scope="module")
def fhir_run(tmp_path_factory):
    data = write_fhir_corpus(tmp_path_factory.mktemp("fhir_data"))
    out = tmp_path_factory.mktemp("fhir_run")
    proc, _ = run_suite(out, "data.source=fhir", f"data.dir={data}", site=True)
    return out, proc


@pytest.mark.parametrize("run", ["mimic3_run", "fhir_run"])
def test_real_source_run_renders_no_note_text(run, request):
    out, proc = request.getfixturevalue(run)
    needles = [s.lower() for s in MARKER_SENTENCES] + ["quokka", "marmalade", "bellwether", "origami", "zephyr"]
    scanned, leaks = [], []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or rel.parts[0] in DATA_FOLDERS:
            continue
        scanned.append(rel.as_posix())
        text = strip_embedded_images(path.read_bytes().decode("utf-8", errors="ignore")).lower()
        found = [n for n in needles if n in text] + NOTE_TAG.findall(text)[:3]
        if found:
            leaks.append(f"{rel}: {found}")
    log = (proc.stdout + proc.stderr).lower()
    if any(n in log for n in needles) or NOTE_TAG.search(log):
        leaks.append("run_all.py console output")
    assert not leaks, "note text in rendered output:\n" + "\n".join(leaks)
    # The scan covered every kind of rendered output.
    for pattern in (r"^notebooks/07_attention\.ipynb$", r"^site/index\.html$", r"^site/notebooks/.*\.html$",
                    r"^tables/.*\.csv$", r"^figures/.*\.png$", r"^figures/figure3_xml_attention\.html$",
                    r"^run_manifest\.json$", r"^metrics/.*\.json$"):
        assert any(re.match(pattern, s) for s in scanned), pattern
    # Figures are rasters: the figure code itself must have been told to hide the text.
    for name in ("03_pretraining-tiny", "07_attention"):
        nb = json.loads((out / "notebooks" / f"{name}.ipynb").read_text())
        injected = "".join("".join(c["source"]) for c in nb["cells"]
                           if "injected-parameters" in c["metadata"].get("tags", []))
        assert "render_show_text = False" in injected, name
        printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                          for o in c.get("outputs", []))
        assert "note text in figures: hidden" in printed, name
    assert "Text hidden" in (out / "figures" / "figure3_xml_attention.html").read_text()


# ---------------------------------------------------------------------------------------------
# MIMIC-IV (ICD-10 chosen, ICD-9 rows present) and CodiEsp (official split)
# ---------------------------------------------------------------------------------------------

def test_mimic4_runs_the_whole_suite_on_the_chosen_icd_version(tmp_path):
    data = write_mimic4_corpus(tmp_path / "data")
    out = tmp_path / "run"
    run_suite(out, "data.source=mimic4", f"data.dir={data}", "data.icd_version=10")
    label_set = check_whole_suite(out, "mimic4", icd_version=10)
    assert "I10" in label_set["codes"] and not any(c[0].isdigit() for c in label_set["codes"])  # no ICD-9 code
    source = json.loads((out / "raw" / "source.json").read_text())
    assert source["notes_of_uncoded_admissions"] > 0  # admissions coded in ICD-9 only are left out


def test_codiesp_runs_the_whole_suite_on_its_official_split(tmp_path):
    data = write_codiesp_corpus(tmp_path / "data")
    out = tmp_path / "run"
    run_suite(out, "data.source=codiesp", f"data.dir={data}", "data.language=en")
    check_whole_suite(out, "codiesp", icd_version=10)
    stats = json.loads((out / "cohort" / "stats.json").read_text())
    assert stats["split_source"] == "given" and stats["split_notes"] == {"train": 108, "dev": 27, "test": 45}
    assert json.loads((out / "raw" / "source.json").read_text())["background_documents"] == 2


# ---------------------------------------------------------------------------------------------
# FHIR R4 (Bulk Data NDJSON + a Bundle of Compositions), labels through the encounter
# ---------------------------------------------------------------------------------------------

def test_fhir_runs_the_whole_suite_on_encounter_labels(fhir_run):
    out, _ = fhir_run
    label_set = check_whole_suite(out, "fhir", icd_version=10)
    assert "I10" in label_set["codes"]
    source = json.loads((out / "raw" / "source.json").read_text())
    assert source["notes"] == 230 and source["duplicates_dropped"] == 1 and source["notes_without_encounter"] == 1
    assert source["resources_ignored"] == {"Observation": 1}
