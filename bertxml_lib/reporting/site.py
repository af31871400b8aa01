"""Reporting — the results site of a run (`site/index.html`): the findings first (what was run, Table 2 as a
forest plot and a rounded table, the paper's claims with their verdicts), then each paper table and figure
beside the paper's numbers; details one click away (executed notebooks rendered with nbconvert, one page per
table). Every figure links to the notebook that drew it, every table to its page and CSV.

Pages are built from `reporting.findings`, `tables/`, `figures/` and the executed notebooks only; note text
reaches a page only through those, which follow `render.show_text`. Nothing is loaded from the network.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation.paper_results import paper_facts
from bertxml_lib.reporting import findings as fnd
from bertxml_lib.reporting.forest import forest_figure

TABLE_TITLES = {
    "table2.csv": "Table 2 — every metric of every model on the test split",
    "table3_low_frequency.csv": "Table 3 — macro AUC on low-frequency codes",
    "table4_per_code.csv": "Table 4 — the most frequent codes: test count and AUC",
    "paper_vs_reproduced.csv": "Paper vs reproduced",
    "cohort_stats.csv": "Cohort statistics vs the paper",
    "oov_summary.csv": "Out-of-vocabulary words per note",
    "frequency_bins.csv": "Macro AUC and F1 per training-frequency bin",
    "confused_pairs.csv": "Lowest-AUC codes and the code most often scored above them",
    "paper_vs_reproduced_pairs.csv": "Paper vs reproduced — every compared pair of rows with its paired interval",
    "oracle_decomposition.csv": "The ceiling row (oracle): what it is made of",
    "synthetic_phenomena.csv": "How often each context phenomenon occurs in the synthetic cohort",
}
#: The paper's captions (quoted), shown beside our version of each figure.
PAPER_FIGURES = {
    "figure1_mlm_example.png": ("Figure 1", "Example of masked language model task for BERT trained on EHR notes. "
                                "Highlighted tokens are model predictions for [MASK] tokens."),
    "figure2_auc_distribution.png": ("Figure 2", "Distributions of AUCs across ICD 10 codes."),
    "figure3_xml_attention.png": ("Figure 3", "Visualization of XML-BERT attention layer. Darker colors correspond "
                                  "to higher attention weights."),
    "figure4_attention_heads.png": ("Figure 4", "The attention weights of each head in the last layer of the BERT "
                                    "encoder. Brighter color denotes higher attention score."),
}
#: Which notebook stage writes a file, by file-name prefix (the executed notebook is then chosen by suffix).
ORIGIN = (("cohort", "01"), ("label_set", "01"), ("oov", "02"), ("token_lengths", "02"), ("figure1", "03"),
          ("pretrain_loss", "03"), ("finetune_history", "04"), ("baselines", "05"), ("figure2", "06"),
          ("frequency_bins", "06"), ("table", "06"), ("paper_vs", "06"), ("confused", "06"), ("prior", "06"),
          ("oracle", "01"), ("synthetic", "01"), ("figure3", "07"), ("figure4", "07"))
DETAIL_GROUPS = (("Training histories", ("finetune_history", "baselines_dev_auc")), ("Pretraining", ("pretrain_loss",)),
                 ("Frequency bins and per-code tables", ("frequency_bins", "table4", "confused", "table3")))
MAX_TABLE_ROWS = 300
_NUMERIC = re.compile(r"[-+0-9.,%–\[\] ]+")  # numbers, ranges and intervals: right-aligned, never wrapped
#: Columns of a table shown on the index page (its own page shows all).
INDEX_COLUMNS = {"oov_summary.csv": ["tokenizer", "vocab_size", "notes", "oov_words_per_note", "split_words_per_note",
                                     "tokens_per_note"]}

CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1320px;margin:0 auto;padding:12px 24px;
color:#222;line-height:1.4}h1{font-size:24px;margin:6px 0}h2{font-size:19px;margin:26px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}a{color:#0b5cad}.sub{color:#555;margin:0 0 8px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:2px 18px;font-size:13px;
background:#f6f7f9;padding:8px 12px;border-radius:6px}.facts b a{color:#555;font-weight:600}
.glance{display:grid;grid-template-columns:1fr 1fr;gap:2px 24px;font-size:13px;margin:8px 0}
.glance div{display:flex;gap:8px;align-items:baseline}.v{border-radius:3px;padding:0 6px;font-size:12px;white-space:nowrap}
.v-holds{background:#d9f2e1;color:#0d6b2e}.v-contradicted,.v-does-not-hold{background:#fbdcdc;color:#9b1c1c}
.v-inconclusive{background:#fdf0cc;color:#7a5500}.v-na,.v-other{background:#eee;color:#555}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 8px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top;max-width:420px}
th{background:#f6f7f9;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ref td{color:#555;font-style:italic}tr.na td{color:#888}figure{margin:8px 0}img{max-width:100%;height:auto}
figcaption,.src{font-size:12px;color:#555}.pair{display:grid;grid-template-columns:minmax(0,1fr) 300px;gap:18px;align-items:start}
.paper{background:#fbf8ef;border-left:3px solid #d8c38a;padding:6px 10px;font-size:13px}details{margin:6px 0}
summary{cursor:pointer;font-weight:600}nav{font-size:13px;margin:4px 0 10px}"""


def _page(title: str, body: str, depth: int = 0) -> str:
    back = "" if depth == 0 else f'<nav><a href="{"../" * depth}index.html">← results</a></nav>'
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>{CSS}</style>'
            f'</head><body>{back}{body}</body></html>')


def origin_notebook(name: str, stems: list[str]) -> str | None:
    """The executed notebook (stem) that wrote `name`: the stage by prefix, the execution by its suffix."""
    stage = next((s for prefix, s in ORIGIN if name.startswith(prefix)), None)
    by_suffix = sorted((s for s in stems if "-" in s and s.split("-", 1)[1] in name),
                       key=lambda s: (not s.startswith(f"{stage}_"), -len(s)))
    if by_suffix and (stage is None or by_suffix[0].startswith(f"{stage}_") or name.startswith("finetune_history")):
        return by_suffix[0]
    return next((s for s in stems if stage and s.startswith(f"{stage}_")), None)


def _nb_link(stem: str | None, depth: int = 0) -> str:
    return "" if not stem else f'<a href="{"../" * depth}notebooks/{stem}.html">notebook {html.escape(stem)}</a>'


def html_table(display: pd.DataFrame, row_class: list[str] | None = None) -> str:
    """A display table (strings) as HTML; numeric-looking cells right-aligned, "—" cells carry their reason."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in display.columns)
    rows = []
    for i, r in enumerate(display.itertuples(index=False)):
        reason = str(getattr(r, "note", "") or "") if "note" in display.columns else ""
        cells = []
        for v in r:
            text = "" if fnd.is_missing(v) else str(v)
            if text.startswith('<span class="v'):
                cells.append(f"<td>{text}</td>")
                continue
            num = bool(_NUMERIC.fullmatch(text)) and any(ch.isdigit() for ch in text)
            tip = f' title="{html.escape(reason)}"' if text == fnd.NA and reason else ""
            cells.append(f'<td{" class=num" if num or text == fnd.NA else ""}{tip}>{html.escape(text)}</td>')
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def verdict_chip(verdict: str) -> str:
    key = verdict.replace(".", "").replace(" ", "-")
    cls = key if key in ("holds", "contradicted", "does-not-hold", "inconclusive", "na") else "other"
    return f'<span class="v v-{cls}">{html.escape(verdict)}</span>'


def _table_source(name: str, stems: list[str], depth: int = 0) -> str:
    up = "../" * depth
    page = "" if depth else f'<a href="tables/{Path(name).stem}.html">table page</a> · '
    origin = _nb_link(origin_notebook(name, stems), depth)
    return f'<p class="src">From <code>tables/{html.escape(name)}</code>: {page}<a href="{up}tables/{html.escape(name)}">CSV</a>' \
           + (f" · written by {origin}" if origin else "") + "</p>"


def _figure(name: str, available: list[str], caption: str = "") -> str:
    """A figure of `site/figures/` linked to its full size, its SVG or HTML version (when `available` lists
    one) and the notebook (among the executed notebook stems in `available`) that drew it."""
    svg, page = Path(name).with_suffix(".svg").name, Path(name).with_suffix(".html").name
    extra = "".join(f' · <a href="figures/{n}">{label}</a>' for n, label in ((svg, "SVG"), (page, "interactive page"))
                    if n in available)
    stems = [s for s in available if "." not in s]
    origin = _nb_link(origin_notebook(name, stems))
    return (f'<figure><a href="figures/{name}"><img src="figures/{name}" alt="{html.escape(caption or name)}"></a>'
            f'<figcaption>{html.escape(caption)} <code>figures/{html.escape(name)}</code>{extra}'
            f'{" · drawn by " + origin if origin else ""}</figcaption></figure>')


def _paper_box(heading: str, lines: list[str]) -> str:
    return f'<div class="paper"><b>Paper — {html.escape(heading)}</b>' + "".join(f"<p>{x}</p>" for x in lines) + "</div>"


def _csv_display(path: Path) -> tuple[pd.DataFrame, int]:
    df = pd.read_csv(path)
    return fnd.format_frame(df.head(MAX_TABLE_ROWS)), len(df)


def table_page(path: Path, stems: list[str]) -> str:
    display, n = _csv_display(path)
    title = TABLE_TITLES.get(path.name, path.name)
    more = f"<p class=src>First {MAX_TABLE_ROWS:,} of {n:,} rows; the CSV has all.</p>" if n > MAX_TABLE_ROWS else ""
    return _page(title, f"<h1>{html.escape(title)}</h1>{_table_source(path.name, stems, depth=1)}{more}"
                        + html_table(display), depth=1)


def _paper_sections(paths: RunPaths, stems: list[str], figures: list[str]) -> str:
    facts, out = paper_facts(), []
    if paths.table("table3_low_frequency.csv").exists():
        t3 = facts["table3"]
        rows = "".join(f"<p>{html.escape(r['model'])}: macro AUC {r['macro_auc']:.3f}</p>" for r in t3["rows"])
        ours = fnd.format_frame(pd.read_csv(paths.table("table3_low_frequency.csv")))
        out.append(f'<h3>Table 3 — low-frequency codes</h3><div class="pair"><div>{html_table(ours)}'
                   f'{_table_source("table3_low_frequency.csv", stems)}</div>'
                   + _paper_box("Table 3", [f"Codes with fewer than {t3['low_freq_max']:,} training examples "
                                            f"({t3['n_codes']:,} codes).", rows]) + "</div>")
    if paths.table("table4_per_code.csv").exists():
        t4 = pd.read_csv(paths.table("table4_per_code.csv"))
        out.append(f'<h3>Table 4 — the most frequent codes</h3><div class="pair"><div>'
                   f'{html_table(fnd.format_frame(t4.head(10)))}<details><summary>all {len(t4):,} codes</summary>'
                   f'{html_table(fnd.format_frame(t4))}</details>{_table_source("table4_per_code.csv", stems)}</div>'
                   + _paper_box("Table 4", ["45 most frequent codes of Big EHR BERT + XML; its counts and AUCs are "
                                            "the <code>paper_test_count</code> and <code>paper_auc</code> columns."])
                   + "</div>")
    per_code = facts["per_code"]
    for name, (label, caption) in PAPER_FIGURES.items():
        if name not in figures:
            continue
        lines = [f"“{html.escape(caption)}”"]
        if name.startswith("figure2"):
            lines.append(f"{per_code['n_codes_high_auc']:,} of {per_code['n_codes']:,} codes have AUC ≥ "
                         f"{per_code['high_auc_threshold']} (paper 4.4).")
        out.append(f'<h3>{label}</h3><div class="pair"><div>{_figure(name, figures + stems)}</div>'
                   + _paper_box(label, lines) + "</div>")
    for name, box in (("cohort_stats.csv", "4.1 cohort"), ("oov_summary.csv", "3.2 vocabulary")):
        if paths.table(name).exists():
            lines = ([f"{facts['oov_words_per_note']['general']} OOV words per note with the open-source BERT "
                      f"vocabulary, {facts['oov_words_per_note']['ehr']} with the EHR vocabulary."]
                     if name.startswith("oov") else ["The paper's numbers are the <code>paper</code> column."])
            shown = _csv_display(paths.table(name))[0]
            shown = shown[[c for c in shown.columns if c in INDEX_COLUMNS.get(name, shown.columns)]]
            out.append(f'<h3>{html.escape(TABLE_TITLES[name])}</h3><div class="pair"><div>'
                       f'{html_table(shown)}{_table_source(name, stems)}</div>'
                       + _paper_box(box, lines) + "</div>")
    return "".join(out)


def _details(paths: RunPaths, stems: list[str], tables: list[str], figures: list[str], used: set[str]) -> str:
    nbs = "".join(f'<li><a href="notebooks/{s}.html">{html.escape(s)}</a></li>' for s in stems)
    parts = [f"<details><summary>Executed notebooks ({len(stems)})</summary><ol>{nbs}</ol></details>"]
    grouped: set[str] = set()
    for label, prefixes in DETAIL_GROUPS:
        names = [t for t in tables if t.startswith(prefixes)]
        grouped |= set(names)
        figs = [f for f in figures if f.startswith(prefixes) and f.endswith(".png") and f not in used]
        used |= set(figs)
        if names or figs:
            links = "".join(f'<li><a href="tables/{Path(t).stem}.html">{html.escape(TABLE_TITLES.get(t, t))}</a></li>'
                            for t in names)
            parts.append(f"<details><summary>{label} ({len(names)} tables, {len(figs)} figures)</summary>"
                         f"<ul>{links}</ul>{''.join(_figure(f, figures + stems) for f in figs)}</details>")
    rest = [t for t in tables if t not in grouped]
    links = "".join(f'<li><a href="tables/{Path(t).stem}.html">{html.escape(TABLE_TITLES.get(t, t))}</a></li>'
                    for t in rest)
    parts.append(f"<details><summary>All other tables ({len(rest)})</summary><ul>{links}</ul></details>")
    others = [f for f in figures if f.endswith(".png") and f not in used]
    if others:
        parts.append(f"<details><summary>Other figures ({len(others)})</summary>"
                     f"{''.join(_figure(f, figures + stems) for f in others)}</details>")
    return "".join(parts)


def index_page(paths: RunPaths, title: str, stems: list[str], tables: list[str], figures: list[str]) -> str:
    f = fnd.load_findings(paths.root)
    label_nb = origin_notebook("label_set", stems)
    sources = {"cohort": "tables/cohort_stats.html" if "cohort_stats.csv" in tables else "",
               "label set": f"notebooks/{label_nb}.html" if label_nb else ""}
    facts = "".join(f'<div><b><a href="{sources.get(k) or "run_manifest.json"}">{html.escape(k)}</a></b> '
                    f"{html.escape(v)}</div>" for k, v in f.facts)
    claims = fnd.claims_display(f)
    order = ["contradicted", "does not hold", "holds", "inconclusive"]
    decided = sorted((p for p in zip(claims.get("claim", []), claims.get("verdict", [])) if p[1] in order),
                     key=lambda p: order.index(p[1]))
    rest = [p for p in zip(claims.get("claim", []), claims.get("verdict", [])) if p[1] not in order]
    glance = "".join(f'<div>{verdict_chip(v)}<span>{html.escape(c)}</span></div>' for c, v in decided)
    if rest:
        glance += (f'</div><details><summary>{len(rest)} claims without a verdict (a property of the data, or no '
                   f'comparable rows were run)</summary><div class="glance">'
                   + "".join(f'<div>{verdict_chip(v)}<span>{html.escape(c)}</span></div>' for c, v in rest)
                   + "</div></details><div>")
    body = [f"<h1>{html.escape(title)}</h1><p class=sub>Reproduction of BERT-XML (Zhang, Liu, Razavian 2020) — "
            f"{html.escape(f.date)}. Details one click away: <a href=#details>notebooks and tables</a>.</p>"
            f'<div class="facts">{facts}</div>',
            f"<h2>What reproduced</h2><p><b>{html.escape(fnd.summary_sentence(f))}</b> "
            + ('Verdicts are computed from the numbers (<a href="#claims">claims table</a>).' if len(claims) else
               "Notebook 06 (Table 2 and the claims) has not run in this folder yet.")
            + f'</p><div class="glance">{glance}</div>']
    if len(f.table2):
        used = {"table2_forest.png"}
        body.append("<h2>Table 2</h2>" + _figure("table2_forest.png", figures + stems,
                                                 "Micro and macro AUC of every row with 95% patient-bootstrap intervals.")
                    + html_table(fnd.table2_display(f), [
                        "na" if fnd.not_run_reason(r) else "ref" if str(r["model"]) in fnd.REFERENCE_ROLES else ""
                        for r in f.table2.to_dict("records")]) + _table_source("table2.csv", stems))
    else:
        used = set()
    if len(claims):
        chips = claims.assign(verdict=[verdict_chip(v) for v in claims["verdict"]])
        body.append('<h2 id="claims">Paper vs reproduced</h2>' + html_table(chips)
                    + _table_source("paper_vs_reproduced.csv", stems))
    used |= set(PAPER_FIGURES)
    body.append("<h2>The paper's tables and figures beside ours</h2>" + _paper_sections(paths, stems, figures))
    body.append('<h2 id="details">Details</h2>' + _details(paths, stems, tables, figures, used))
    return _page(title, "".join(body))


def _exporter():
    """nbconvert's lab HTML exporter without its CDN scripts (require.js, MathJax, mermaid): the site opens offline."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    template = ("{%- extends 'index.html.j2' -%}{% block html_head_js %}{% endblock %}"
                "{% block html_head_js_mathjax %}{% endblock %}{% block html_head_js_mermaidjs %}{% endblock %}"
                "{% block extra_css %}<style>.jp-OutputArea-output{overflow-x:auto}"
                "nav.site{font:13px sans-serif;padding:6px 12px}</style>{% endblock %}"
                "{% block body_header %}{{ super() }}<nav class=site><a href='../index.html'>← results</a></nav>"
                "{% endblock %}")
    return HTMLExporter(template_name="lab", template_file="site_notebook.html.j2",
                        extra_loaders=[DictLoader({"site_notebook.html.j2": template})])


def render_site(out_dir: str | Path, notebooks: list[Path], title: str) -> Path:
    """Write `site/` (index, one page per executed notebook and per table, figures) atomically; returns the index."""
    paths = RunPaths(out_dir)
    exporter = _exporter()
    stems = [nb.stem for nb in notebooks]
    with atomic_path(paths.site_dir) as tmp:
        for sub in ("notebooks", "figures", "tables"):
            (tmp / sub).mkdir(parents=True)
        for nb in notebooks:
            body, _ = exporter.from_filename(str(nb))
            (tmp / "notebooks" / f"{nb.stem}.html").write_text(body)
        shutil.copy2(paths.manifest, tmp / "run_manifest.json")  # the facts of the index link to it
        for fig in sorted(paths.figures_dir.glob("*")) if paths.figures_dir.exists() else []:
            shutil.copy2(fig, tmp / "figures" / fig.name)
        tables = sorted(p.name for p in paths.tables_dir.glob("*")) if paths.tables_dir.exists() else []
        for name in tables:
            shutil.copy2(paths.table(name), tmp / "tables" / name)
            if name.endswith(".csv"):
                (tmp / "tables" / f"{Path(name).stem}.html").write_text(table_page(paths.table(name), stems))
        if paths.table("table2.csv").exists():
            forest_figure(fnd.load_findings(out_dir).table2, tmp / "figures" / "table2_forest.png",
                          tmp / "figures" / "table2_forest.svg")
        figures = sorted(p.name for p in (tmp / "figures").iterdir())
        csvs = [t for t in tables if t.endswith(".csv")]
        (tmp / "index.html").write_text(index_page(paths, title, stems, csvs, figures))
    return paths.site_dir / "index.html"
