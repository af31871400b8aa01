"""The browsable results site: every executed notebook rendered with nbconvert, plus tables and figures."""
from __future__ import annotations

import html
import shutil
from pathlib import Path

import pandas as pd

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.paths import RunPaths

TABLE_TITLES = {
    "table2.csv": "Table 2 — micro/macro AUC of every model on the test split",
    "table3_low_frequency.csv": "Table 3 — macro AUC on low-frequency codes",
    "table4_per_code.csv": "Table 4 — the most frequent codes: test count and AUC",
    "paper_vs_reproduced.csv": "Paper vs reproduced",
    "cohort_stats.csv": "Cohort statistics vs the paper",
    "oov_summary.csv": "Out-of-vocabulary words per note",
}


def render_site(out_dir: str | Path, notebooks: list[Path], title: str) -> Path:
    """Write `site/index.html` (linking notebooks, tables and figures) atomically; returns its path."""
    from nbconvert import HTMLExporter

    paths = RunPaths(out_dir)
    exporter = HTMLExporter()
    with atomic_path(paths.site_dir) as tmp:
        (tmp / "notebooks").mkdir(parents=True)
        (tmp / "figures").mkdir()
        links = []
        for nb in notebooks:
            body, _ = exporter.from_filename(str(nb))
            (tmp / "notebooks" / f"{nb.stem}.html").write_text(body)
            links.append(f'<li><a href="notebooks/{nb.stem}.html">{html.escape(nb.stem)}</a></li>')
        figures = []
        for fig in sorted(paths.figures_dir.glob("*")) if paths.figures_dir.exists() else []:
            shutil.copy2(fig, tmp / "figures" / fig.name)
            if fig.suffix == ".png":
                figures.append(f'<figure><img src="figures/{fig.name}" style="max-width:100%">'
                               f'<figcaption>{html.escape(fig.name)}</figcaption></figure>')
            elif fig.suffix == ".html":
                figures.append(f'<p><a href="figures/{fig.name}">{html.escape(fig.name)}</a> (interactive)</p>')
        tables = []
        ordered = sorted(paths.tables_dir.glob("*.csv"), key=lambda p: (p.name not in TABLE_TITLES, p.name)) \
            if paths.tables_dir.exists() else []
        for csv in ordered:
            df = pd.read_csv(csv)
            caption = TABLE_TITLES.get(csv.name, csv.name)
            tables.append(f"<h3>{html.escape(caption)}</h3><p><code>tables/{csv.name}</code></p>"
                          + df.head(60).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:13px}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>BERT-XML reproducibility suite (Zhang, Liu, Razavian 2020). Every number below was computed by the
executed notebooks linked here; see <code>run_manifest.json</code> for provenance.</p>
<h2>Notebooks</h2><ol>{''.join(links)}</ol>
<h2>Tables</h2>{''.join(tables)}
<h2>Figures</h2>{''.join(figures)}
</body></html>"""
        (tmp / "index.html").write_text(page)
    return paths.site_dir / "index.html"
