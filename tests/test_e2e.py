"""The whole suite on the ci profile, once: artifacts, cache reuse, targeted re-execution, nbval."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e

ARTIFACTS = [
    "run_manifest.json", "tables/table2.csv", "tables/table3_low_frequency.csv", "tables/table4_per_code.csv",
    "tables/paper_vs_reproduced.csv", "figures/figure1_mlm_example.png", "figures/figure2_auc_distribution.png",
    "figures/figure3_xml_attention.png", "figures/figure3_xml_attention.html", "figures/figure4_attention_heads.png",
    "site/index.html", "tokenizer/tokenizer.json", "cohort/notes.parquet",
]


def run_all(out, *args):
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "run_manifest.json").read_text())


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci")
    return out, run_all(out)


def test_ci_profile_writes_every_artifact(ci_run):
    out, manifest = ci_run
    for rel in ARTIFACTS:
        assert (out / rel).exists(), rel
    assert {n["status"] for n in manifest["notebooks"]} == {"executed"}
    assert manifest["git_sha"] and manifest["packages"]["torch"].startswith("2.13.0")
    assert manifest["data"]["split_hash"]
    table2 = pd.read_csv(out / "tables/table2.csv")
    names = table2["model"].tolist()
    assert any("logreg" in n for n in names)
    for family in ("cls", "xml"):
        assert {512, 1024} <= set(table2.loc[table2["model"].str.contains(family), "max_len"])
    assert table2["micro_auc"].between(0.5, 1.0).all() and table2["macro_auc"].between(0.0, 1.0).all()
    for row in names:
        if not row.startswith("logreg"):
            assert (out / "models" / row / "config.json").exists()
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert len(executed) == 10
    html = (out / "site/index.html").read_text()
    assert all(f"notebooks/{p[:-6]}.html" in html for p in executed) and "figure2_auc_distribution.png" in html


def test_second_run_is_all_cached_and_a_late_set_reruns_only_what_follows(ci_run):
    out, _ = ci_run
    again = run_all(out)
    assert {n["status"] for n in again["notebooks"]} == {"cached"}
    changed = run_all(out, "--set", "06.analysis.top_codes=5")
    executed = [n["name"] for n in changed["notebooks"] if n["status"] == "executed"]
    assert executed == ["06_per_icd_auc", "07_attention"]
    assert len(pd.read_csv(out / "tables/table4_per_code.csv")) <= 5


def test_nbval_lax_on_executed_analysis_notebooks(ci_run):
    out, _ = ci_run
    books = [str(out / "notebooks" / f"{n}.ipynb") for n in ("05_baselines", "06_per_icd_auc")]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--rootdir", str(out), *books], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_readme_results_section_is_generated_from_the_tables(ci_run, tmp_path):
    from bertxml_lib.readme_results import END, START, update_readme

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
