"""The results site and the README's results section: one findings source (`reporting.findings`), cells
formatted per column, every page checked in headless Chromium (broken links and images, console errors,
pages wider than the window) with full-page screenshots under `site/screenshots/`."""
from __future__ import annotations

import html
import json
import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from bertxml_lib.core.figures import FAMILY_COLOURS, new_figure, row_colour, save_figure
from bertxml_lib.reporting import browser, findings, readme_results, site

# ---------------------------------------------------------------------------------------------------------
# A hand-made finished run: five Table 2 rows (the floor, a baseline, a row not run, EHR BERT + XML, the
# ceiling), claims in the verdict/interval layout, one training history, one figure, one executed notebook.
# ---------------------------------------------------------------------------------------------------------

TABLE2 = pd.DataFrame({
    "model": ["prior", "logreg_512", "clinical_cls_512", "ehr_tiny_xml_1024", "oracle"],
    "family": ["prior", "logreg", "clinical", "xml", "oracle"],
    "encoder": ["", "", "clinical", "tiny", ""],
    "max_len": [np.nan, 512, 512, 1024, np.nan],
    "micro_auc": [0.6, 0.73083, np.nan, 0.7101, 0.99],
    "micro_auc_ci_low": [0.55, 0.679, np.nan, 0.647, 0.98], "micro_auc_ci_high": [0.65, 0.768, np.nan, 0.76, 1.0],
    "macro_auc": [0.5, 0.6924, np.nan, 0.612, 0.97],
    "macro_auc_ci_low": [0.5, 0.6, np.nan, 0.55, 0.95], "macro_auc_ci_high": [0.5, 0.75, np.nan, 0.66, 0.99],
    "micro_f1": [0.1, 0.299, np.nan, 0.245, 0.9],
    "status": ["ok", "ok", "not run: weights not available offline", "ok", "ok"],
})
CLAIMS = pd.DataFrame({
    "quantity": ["XML head beats [CLS] head", "every BERT row beats logistic regression", "best macro AUC"],
    "paper": ["0.968 vs 0.965", "12/12", "0.927"],
    "reproduced": ["0.710 vs 0.676", "0/9", "0.69240000001"],
    "verdict": ["holds", "contradicted", "inconclusive"],
    "difference": [0.034, -0.02, np.nan], "ci_low": [0.01, -0.05, np.nan], "ci_high": [0.06, -0.001, np.nan],
    "note": ["", "923.0000000000002 notes", ""],
})


def make_run(root):
    (root / "tables").mkdir(parents=True)
    (root / "figures").mkdir()
    (root / "cohort").mkdir()
    (root / "notebooks").mkdir()
    (root / "metrics" / "timings").mkdir(parents=True)
    (root / "raw").mkdir()
    (root / "raw" / "notes.parquet").write_bytes(b"")  # marks the synthetic source for render.show_text=auto
    (root / "run_manifest.json").write_text(json.dumps({
        "profile": "ci", "git_sha": "0123456789abcdef0123+dirty", "seed": 0, "total_seconds": 61.0,
        "parameters": {"data.source": "synthetic", "data.n_patients": 1500, "render.show_text": "auto"},
        "data": {"cohort/notes.parquet": "39056b974c915836aa", "split_hash": "4fcf0cd3801da03fbb"},
        "notebooks": [{"name": "06_per_icd_auc", "status": "executed", "seconds": 90.0}]}))
    (root / "cohort" / "stats.json").write_text(json.dumps({
        "patients": 1500, "notes": 12345, "split_notes": {"train": 8641, "dev": 1234, "test": 2470}}))
    (root / "cohort" / "label_set.json").write_text(json.dumps({"codes": ["I10", "E11.9"], "icd_version": 10,
                                                                "min_train_count": 25}))
    (root / "metrics" / "timings" / "analysis.json").write_text(json.dumps({
        "train_seconds": {"logreg_512": 1.47, "ehr_tiny_xml_1024": 1234.5},
        "paper_vs_reproduced": [{"quantity": "training time at max_len 1024 / at 512", "paper": "3.5",
                                 "reproduced": "1.2711", "holds": "no", "note": "measured"}]}))
    TABLE2.to_csv(root / "tables" / "table2.csv", index=False)
    CLAIMS.to_csv(root / "tables" / "paper_vs_reproduced.csv", index=False)
    pd.DataFrame({"epoch": [1, 2], "train_loss": [0.61234567, 0.4], "dev_micro_auc": [0.6, 0.71]}).to_csv(
        root / "tables" / "finetune_history_ehr_tiny_xml_1024.csv", index=False)
    fig = new_figure(4, 3)
    fig.subplots().plot([0, 1], [0, 1], color=row_colour("ehr_tiny_xml_1024"))
    save_figure(fig, root / "figures" / "figure2_auc_distribution.png")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 06 — per-ICD AUC"),
                                         nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
                                             "execute_result", {"text/plain": "2"}, execution_count=1)])])
    nbformat.write(nb, root / "notebooks" / "06_per_icd_auc.ipynb")
    return root


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


def test_cells_are_rounded_per_column():
    f = findings.format_cell
    assert (f("micro_auc", 0.73083), f("test_count", 12345), f("notes", 923.0000000000002)) == ("0.731", "12,345", "923")
    assert (f("max_len", 1024.0), f("train_seconds", 1234.56), f("headroom_share", 0.4567)) == ("1024", "1,234.6", "45.7%")
    assert (f("macro_auc", np.nan), f("note", None), f("same_category", True)) == ("—", "—", "yes")
    assert f("reproduced", "0.69240000001") == "0.692" and f("paper", "12/12") == "12/12"
    assert findings.round_numbers_in_text("p90 564.2000000000002 words") == "p90 564.2 words"


def test_row_colours_follow_the_family():
    assert row_colour("ehr_tiny_xml_512") == row_colour("ehr_mini_xml_1024") == FAMILY_COLOURS["xml"]
    assert row_colour("offshelf_finetuned_cls_1024") == FAMILY_COLOURS["offshelf"]
    assert row_colour("prior") != row_colour("oracle") and row_colour("unknown") == "#444444"


def test_findings_of_a_run(run_dir):
    f = findings.load_findings(run_dir)
    facts = dict(f.facts)
    assert facts["cohort"] == "1,500 patients, 12,345 notes (train 8,641 / dev 1,234 / test 2,470)"
    assert facts["git"] == "0123456789ab (uncommitted changes)" and "split 4fcf0cd3801d" in facts["data hash"]
    assert facts["label set"].startswith("2 ICD-10 codes") and f.show_text
    t2 = findings.table2_display(f).set_index("model")
    assert t2.loc["ehr_tiny_xml_1024", "micro AUC"] == "0.710" and t2.loc["ehr_tiny_xml_1024", "micro 95% CI"] == "0.647–0.760"
    assert t2.loc["ehr_tiny_xml_1024", "train s"] == "1,234.5" and t2.loc["ehr_tiny_xml_1024", "max len"] == "1024"
    assert t2.loc["ehr_tiny_xml_1024", "paper micro"] == "0.968"  # EHR BERT Small + XML (1024), paper Table 2
    assert t2.loc["clinical_cls_512", "micro AUC"] == "—" and t2.loc["clinical_cls_512", "note"].startswith("not run")
    assert t2.loc["prior (floor)", "note"].startswith("floor") and "oracle (ceiling)" in t2.index
    claims = findings.claims_display(f)
    assert claims["verdict"].tolist() == ["holds", "contradicted", "inconclusive", "does not hold"]
    assert claims["difference (95% CI)"].tolist()[:3] == ["+0.034 [0.010, 0.060]", "-0.020 [-0.050, -0.001]", ""]
    assert claims["reproduced"].tolist()[2:] == ["0.692", "1.271"] and claims["note"][1] == "923 notes"
    assert findings.summary_sentence(f) == ("Of the paper's 4 claims checked here, 1 holds, 1 is contradicted, "
                                            "1 does not hold, 1 is inconclusive.")


def test_claims_in_the_yes_no_layout_read_too(run_dir):
    CLAIMS.drop(columns=["verdict", "difference", "ci_low", "ci_high"]).assign(holds=["yes", "no", "n.a."]).to_csv(
        run_dir / "tables" / "paper_vs_reproduced.csv", index=False)
    claims = findings.claims_display(findings.load_findings(run_dir))
    assert claims["verdict"].tolist() == ["holds", "does not hold", "n.a.", "does not hold"]
    assert "difference (95% CI)" not in claims


def test_origin_notebook_of_a_file():
    stems = ["01_cohort", "03_pretraining-tiny", "04_finetuning-ehr_tiny_xml_512", "05_baselines-mha",
             "06_per_icd_auc", "07_attention"]
    o = site.origin_notebook
    assert o("finetune_history_ehr_tiny_xml_512.csv", stems) == "04_finetuning-ehr_tiny_xml_512"
    assert o("finetune_history_mha_512.csv", stems) == "05_baselines-mha"
    assert o("pretrain_loss_tiny.png", stems) == "03_pretraining-tiny" and o("table2.csv", stems) == "06_per_icd_auc"
    assert o("figure3_xml_attention.html", stems) == "07_attention" and o("whatever.csv", stems) is None


def _site_links_resolve(index):
    """Every href/src of every page of the site exists (a check without a browser)."""
    root = index.parent
    for page in root.rglob("*.html"):
        for ref in re.findall(r'(?:href|src)="([^"#]+)', page.read_text()):
            if not ref.startswith(("http", "data:")):
                assert (page.parent / ref).exists(), f"{page.relative_to(root)}: {ref}"


def test_site_puts_the_findings_first_and_links_the_details(run_dir):
    index = site.render_site(run_dir, [run_dir / "notebooks" / "06_per_icd_auc.ipynb"], "BERT-XML — ci")
    text = index.read_text()
    f = findings.load_findings(run_dir)
    # Findings before details: facts, the verdict summary, Table 2, the claims, then the detail pages.
    order = [text.index(s) for s in ("12,345 notes", html.escape(findings.summary_sentence(f)), "table2_forest.png",
                                     'id="claims"', 'id="details"')]
    assert order == sorted(order)
    for cell in [*findings.table2_display(f).to_numpy().ravel(), *findings.claims_display(f).to_numpy().ravel()]:
        assert html.escape(str(cell)) in text, cell
    site_dir = index.parent
    for rel in ("figures/table2_forest.png", "figures/table2_forest.svg", "notebooks/06_per_icd_auc.html",
                "tables/finetune_history_ehr_tiny_xml_1024.html", "tables/table2.csv"):
        assert (site_dir / rel).exists(), rel
    assert 'href="notebooks/06_per_icd_auc.html">notebook 06_per_icd_auc</a>' in text  # figure -> its notebook
    nb_page = (site_dir / "notebooks" / "06_per_icd_auc.html").read_text()
    assert "cdnjs" not in nb_page and "../index.html" in nb_page  # offline, with a way back
    history = (site_dir / "tables" / "finetune_history_ehr_tiny_xml_1024.html").read_text()
    assert "0.612" in history and "0.61234567" not in history and "04_" not in history
    _site_links_resolve(index)


def test_readme_section_shows_the_index_page_cells(run_dir, tmp_path):
    index = site.render_site(run_dir, [run_dir / "notebooks" / "06_per_icd_auc.ipynb"], "BERT-XML — ci")
    section = readme_results.results_section(run_dir, tmp_path)
    f = findings.load_findings(run_dir)
    page = index.read_text()
    for df in (findings.table2_display(f), findings.claims_display(f)):
        for cell in df.to_numpy().ravel():
            assert str(cell).replace("|", "\\|") in section and html.escape(str(cell)) in page, cell
    assert findings.summary_sentence(f) in section and all(v in section for _, v in f.facts)


# ---------------------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------------------

def _chromium():
    exe = browser.find_chromium()
    if not exe:
        pytest.skip(browser.INSTALL_HINT)
    return exe


def _assert_clean(reports):
    bad = [f"{r.path}: {p}" for r in reports for p in r.problems]
    assert not bad, "\n".join(bad)
    assert all(r.screenshot and r.width <= 1400 for r in reports)


def test_hand_made_site_in_chromium(run_dir):
    exe = _chromium()
    index = site.render_site(run_dir, [run_dir / "notebooks" / "06_per_icd_auc.ipynb"], "BERT-XML — ci")
    reports = browser.check_site(index, index.parent / "screenshots", executable=exe)
    _assert_clean(reports)
    assert {"index.html", "notebooks/06_per_icd_auc.html", "tables/table2.html"} <= {r.path for r in reports}


def test_browser_check_catches_broken_pages(tmp_path):
    exe = _chromium()
    (tmp_path / "ok.html").write_text("<!doctype html><p>fine</p>")
    (tmp_path / "index.html").write_text(
        '<!doctype html><a href="ok.html">ok</a> <a href="missing.html">x</a> <img src="none.png"> <a href="#nope">a</a>'
        '<div style="width:3000px">wide</div><script>console.error("boom"); undefinedFunction();</script>')
    reports = {r.path: r for r in browser.check_site(tmp_path / "index.html", executable=exe)}
    problems = " | ".join(reports["index.html"].problems)
    for expected in ("broken link: missing.html", "broken image: none.png", "broken anchor: #nope", "wider than",
                     "console.error: boom", "undefinedFunction"):
        assert expected in problems, (expected, problems)
    assert reports["ok.html"].problems == []


@pytest.mark.e2e
def test_ci_site_in_chromium(ci_run):
    """The ci run's site: the index and every page it links open cleanly at 1,400 px; screenshots kept."""
    exe = _chromium()
    out, _ = ci_run
    index = out / "site" / "index.html"
    reports = browser.check_site(index, out / "site" / "screenshots", executable=exe)
    _assert_clean(reports)
    pages = {r.path for r in reports}
    executed = {f"notebooks/{p.stem}.html" for p in (out / "notebooks").glob("*.ipynb")}
    assert "index.html" in pages and executed <= pages and {p[10:12] for p in executed} == {f"0{i}" for i in range(1, 10)}
    assert (out / "site" / "screenshots" / "index.png").exists() and (out / "site" / "screenshots" / "report.json").exists()
    print(f"screenshots of {len(reports)} pages: {out / 'site' / 'screenshots'}")
    first_screen = index.read_text().split('id="claims"')[0]
    assert "What reproduced" in first_screen and "table2_forest.png" in first_screen


def test_site_of_a_run_before_notebook_06(run_dir):
    """A partial run (no Table 2, no claims yet) still gets an index whose every link resolves."""
    for name in ("table2.csv", "paper_vs_reproduced.csv"):
        (run_dir / "tables" / name).unlink()
    (run_dir / "metrics" / "timings" / "analysis.json").unlink()
    index = site.render_site(run_dir, [run_dir / "notebooks" / "06_per_icd_auc.ipynb"], "partial")
    text = index.read_text()
    assert "No paper claims were checked." in text and "has not run" in text and 'href="#claims"' not in text
    assert not (index.parent / "figures" / "table2_forest.png").exists()
    _site_links_resolve(index)
