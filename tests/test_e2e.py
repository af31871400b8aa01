"""The whole suite on the ci profile, once: artifacts, cache reuse, targeted re-execution, nbval."""
import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO, copy_run, run_all

pytestmark = pytest.mark.e2e

ARTIFACTS = [
    "run_manifest.json", "tables/table2.csv", "tables/table3_low_frequency.csv", "tables/table4_per_code.csv",
    "tables/paper_vs_reproduced.csv", "figures/figure1_mlm_example.png", "figures/figure2_auc_distribution.png",
    "figures/figure3_xml_attention.png", "figures/figure3_xml_attention.html", "figures/figure4_attention_heads.png",
    "site/index.html", "tokenizer/tokenizer.json", "cohort/notes.parquet",
]


def test_ci_profile_writes_every_artifact(ci_run):
    out, manifest = ci_run
    for rel in ARTIFACTS:
        assert (out / rel).exists(), rel
    assert {n["status"] for n in manifest["notebooks"]} == {"executed"}
    assert manifest["git_sha"] and manifest["packages"]["torch"].startswith("2.13.0")
    assert manifest["data"]["split_hash"]
    table2 = pd.read_csv(out / "tables/table2.csv")
    names = table2["model"].tolist()
    # The ci profile's row families: floor and ceiling, the baselines, EHR BERT with every head (the
    # off-the-shelf rows run in `full`; the determinism pair below trains one of them).
    for family in ("prior", "oracle", "logreg", "mha", "cnn", "_cls_", "_xml_", "_lan_", "_hier_"):
        assert any(family in n for n in names), family
    for family in ("ehr_tiny_cls", "ehr_tiny_xml"):
        assert {512, 1024} <= set(table2.loc[table2["model"].str.startswith(family), "max_len"])
    assert (table2["status"] == "ok").all()
    ran = table2
    assert ran["micro_auc"].between(0.5, 1.0).all() and ran["macro_auc"].between(0.0, 1.0).all()
    for column in ("micro_auc_ci_low", "micro_auc_ci_high", "macro_f1_present", "p_at_15", "r_at_10", "map"):
        assert ran[column].notna().all(), column
    # headroom_share = (auc - prior) / (oracle - prior): 0 for the floor and 1 for the ceiling by construction.
    share = table2.set_index("model")["headroom_share"]
    assert share["prior"] == pytest.approx(0.0) and share["oracle"] == pytest.approx(1.0)
    assert table2.set_index("model").loc["oracle", "micro_auc"] > table2.set_index("model").loc["prior", "micro_auc"]
    for row in ran["model"]:
        if row not in ("prior", "oracle") and not row.startswith("logreg"):
            assert (out / "models" / row / ("neural_baseline.json" if row[:3] in ("mha", "cnn") else "config.json")).exists()
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert len(executed) == len(manifest["notebooks"]) and {p[:2] for p in executed} == {f"0{i}" for i in range(1, 10)}
    html = (out / "site/index.html").read_text()
    assert all(f"notebooks/{p[:-6]}.html" in html for p in executed) and "figure2_auc_distribution.png" in html


# One row of each trained kind (EHR BERT + XML, the off-the-shelf BERT, LAN, hier, each baseline): the
# determinism test runs the ci profile twice with these, so CI stays short while every code path that
# trains runs twice.
def test_same_seed_gives_byte_identical_tables_across_forced_runs(ci_run, tmp_path):
    """a forced second run of the ci profile writes the same bytes to every tables/*.csv as the shared ci
    run (wall times live in metrics/ and the manifest, not in tables). Every row family of the ci profile
    takes part; the off-the-shelf row's determinism is checked in test_pretrained_rows."""
    first_dir, _ = ci_run
    run_all(tmp_path / "again", "--force", "--no-site")
    first = {p.name: p.read_bytes() for p in sorted((first_dir / "tables").glob("*.csv"))}
    second = {p.name: p.read_bytes() for p in sorted((tmp_path / "again" / "tables").glob("*.csv"))}
    assert len(first) >= 10 and sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    rows = set(pd.read_csv(first_dir / "tables" / "table2.csv")["model"])
    assert {"prior", "oracle", "ehr_tiny_xml_512", "ehr_tiny_cls_1024", "ehr_tiny_lan_512", "ehr_tiny_hier_1024",
            "logreg_512", "mha_512", "cnn_512"} <= rows


def test_predict_cli_works_on_every_model_folder_of_the_run(ci_run, tmp_path):
    """`python -m bertxml_lib.predict` on each fine-tuned and baseline folder of the run."""
    out, _ = ci_run
    notes = pd.read_parquet(out / "cohort" / "notes.parquet").query("split == 'test'").head(3)
    notes[["note_id", "text"]].to_csv(tmp_path / "notes.csv", index=False)
    folders = sorted(p for p in (out / "models").iterdir() if not p.name.startswith("pretrained_"))
    table2 = pd.read_csv(out / "tables" / "table2.csv")
    # every trained row keeps a model folder; logistic regression and the prior/oracle rows keep none
    expected = {m for m in table2["model"] if m not in ("prior", "oracle") and not m.startswith("logreg")}
    assert {p.name for p in folders} == expected and len(folders) == 8  # 6 EHR BERT rows, mha, cnn
    for folder in folders:
        proc = subprocess.run([sys.executable, "-m", "bertxml_lib.predict", "--model", str(folder), "--top-k", "3",
                               "--quiet", str(tmp_path / "notes.csv")], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, (folder.name, proc.stderr[-2000:])
        result = json.loads(proc.stdout)
        assert [n["note_id"] for n in result["notes"]] == notes["note_id"].tolist()
        for note, text in zip(result["notes"], notes["text"]):
            assert len(note["codes"]) == 3 and all(0.0 <= c["probability"] <= 1.0 for c in note["codes"])
            for span in (s for c in note["codes"] for s in c.get("evidence") or []):
                assert span["text"] == text[span["start"]:span["end"]]
        if not folder.name.startswith(("ehr_tiny_cls", "offshelf")):  # attention heads give evidence
            assert any(c.get("evidence") for n in result["notes"] for c in n["codes"]), folder.name


def test_second_run_is_all_cached_and_a_late_set_reruns_only_what_follows(ci_run, tmp_path):
    out = copy_run(ci_run[0], tmp_path / "run")
    again = run_all(out)
    assert {n["status"] for n in again["notebooks"]} == {"cached"}
    changed = run_all(out, "--set", "06.analysis.top_codes=5")
    executed = [n["name"] for n in changed["notebooks"] if n["status"] == "executed"]
    assert executed == ["06_per_icd_auc", "07_attention"]
    assert len(pd.read_csv(out / "tables/table4_per_code.csv")) <= 5


def test_nbval_lax_on_executed_analysis_notebooks(ci_run):
    out, _ = ci_run
    books = [str(out / "notebooks" / f"{n}.ipynb") for n in ("05_baselines-logreg", "05_baselines-mha", "06_per_icd_auc")]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--rootdir", str(out), *books], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_readme_results_section_is_generated_from_the_tables(ci_run, tmp_path):
    from bertxml_lib.reporting.readme_results import END, START, update_readme

    out, _ = ci_run
    readme = tmp_path / "README.md"
    (tmp_path / "figures").mkdir()
    readme.write_text(f"# x\n{START}\nSTALE-PLACEHOLDER\n{END}\ntail\n")
    update_readme(out, readme)
    text = readme.read_text()
    table2 = pd.read_csv(out / "tables/table2.csv")
    assert "STALE-PLACEHOLDER" not in text and text.endswith("tail\n")
    assert all(m in text for m in table2["model"]) and f"{table2['micro_auc'].iloc[0]:.3f}" in text
    assert (tmp_path / "figures" / "figure2_auc_distribution.png").exists()
