"""Reporting — the findings of one finished run (paper 4.4, Tables 2-3): what was run, Table 2 beside the
paper's rows, and the paper-vs-reproduced claims with their verdicts.

The site's index page (`reporting.site`) and the README's results section (`reporting.readme_results`) both
render a `Findings`, so the two say the same thing cell for cell. Every cell is formatted here once
(`format_cell`: AUCs to 3 decimals, counts with thousands separators, "—" for a missing value).
Only run metadata, tables and cohort statistics are read: never note text.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import read_json
from bertxml_lib.core.config import resolve_show_text
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation.paper_results import paper_rows_for

#: Reference rows of Table 2: the floor (label prior) and, on synthetic data, the ceiling (oracle).
REFERENCE_ROLES = {"prior": "floor", "oracle": "ceiling"}
NA = "—"

_METRIC = re.compile(r"(auc|f1|p_at_\d+|r_at_\d+|^map|precision|recall|threshold|_rate$|^rate$|loss|ndcg)", re.IGNORECASE)
_SHARE = re.compile(r"(share|fraction)", re.IGNORECASE)
_PLAIN_INT = re.compile(r"^(max_len|max_tokens|seed|bin|rank|step|epoch|year|paper_position)$", re.IGNORECASE)
_SECONDS = re.compile(r"(seconds|_s$)", re.IGNORECASE)
_LONG_FLOAT = re.compile(r"(?<![\w.])(\d+\.\d{4,})(?![\w.])")


@dataclass
class Findings:
    """`facts`: (label, text) pairs of what was run; `table2`: tables/table2.csv with train_seconds and the
    paper's matching rows (raw values); `claims`: tables/paper_vs_reproduced.csv plus the timing claims."""
    run_dir: Path
    profile: str
    facts: list[tuple[str, str]]
    table2: pd.DataFrame
    claims: pd.DataFrame
    show_text: bool
    date: str


def is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def round_numbers_in_text(text: str) -> str:
    """Floats with 4+ decimals inside free text (`923.0000000000002`, `0.73083`) to at most 3 decimals."""
    return _LONG_FLOAT.sub(lambda m: _trim(float(m.group(1))), text)


def _near_int(v: float) -> bool:
    return abs(v - round(v)) <= 1e-9 * max(1.0, abs(v))


def _trim(v: float) -> str:
    if _near_int(v):
        return f"{round(v):,}"
    return (f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}").rstrip("0").rstrip(".")


def format_cell(column: str, value) -> str:
    """One table cell as a reader sees it; the column name decides the rounding."""
    if is_missing(value):
        return NA
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return round_numbers_in_text(text) or NA
        return format_cell(column, number) if text.lower() not in ("nan", "inf", "-inf") else NA
    if isinstance(value, (int, np.integer)):
        return str(int(value)) if _PLAIN_INT.search(column) else f"{int(value):,}"
    v = float(value)
    if _SHARE.search(column) and abs(v) <= 1:
        return f"{v:.1%}"
    if _METRIC.search(column):
        return f"{v:.3f}"
    if _near_int(v):
        return str(round(v)) if _PLAIN_INT.search(column) else f"{round(v):,}"
    if _SECONDS.search(column):
        return f"{v:,.1f}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3f}"


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of `df` through `format_cell` (strings out, same columns)."""
    return pd.DataFrame({c: [format_cell(str(c), v) for v in df[c].tolist()] for c in df.columns}, dtype=object)


# ---------------------------------------------------------------------------------------------------------
# Reading a run
# ---------------------------------------------------------------------------------------------------------

def with_paper_columns(table2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 with the paper's row(s) that each of our rows reproduces (`paper_results.paper_rows_for`):
    `paper row`, `paper micro`, `paper macro` (missing where the paper has no such row)."""
    names, micro, macro = [], [], []
    for r in table2.to_dict("records"):
        encoder = "" if is_missing(r.get("encoder")) else str(r.get("encoder", ""))
        p = paper_rows_for(r["model"], r.get("family", ""), encoder, r.get("max_len"))
        names.append(" / ".join(p["model"]) or None)
        micro.append(" / ".join(f"{v:.3f}" for v in p["micro_auc"]) or None)
        macro.append(" / ".join(f"{v:.3f}" for v in p["macro_auc"]) or None)
    return table2.assign(**{"paper row": names, "paper micro": micro, "paper macro": macro})


def _run_facts(paths: RunPaths, manifest: dict, show_text: bool) -> list[tuple[str, str]]:
    params = manifest.get("parameters", {})
    source = str(params.get("data.source", "synthetic"))
    facts = [("profile", f"{manifest.get('profile', '?')} (seed {manifest.get('seed', params.get('seed', '?'))})")]
    facts.append(("source", source + (f", {int(params['data.n_patients']):,} patients generated"
                                      if source == "synthetic" and "data.n_patients" in params else "")))
    stats = read_json(paths.root / "cohort" / "stats.json") if (paths.root / "cohort" / "stats.json").exists() else {}
    if stats:
        split = stats.get("split_notes", {})
        facts.append(("cohort", f"{stats.get('patients', 0):,} patients, {stats.get('notes', 0):,} notes "
                                f"(train {split.get('train', 0):,} / dev {split.get('dev', 0):,} / test {split.get('test', 0):,})"))
    label_file = paths.root / "cohort" / "label_set.json"
    if label_file.exists():
        labels = read_json(label_file)
        facts.append(("label set", f"{len(labels.get('codes', [])):,} ICD-{labels.get('icd_version', 10)} codes with at "
                                   f"least {labels.get('min_train_count', '?')} training notes each"))
    facts.append(("git", str(manifest.get("git_sha", "?"))[:12] + (" (uncommitted changes)" if
                                                                  str(manifest.get("git_sha", "")).endswith("+dirty") else "")))
    data = manifest.get("data", {})
    hashes = [f"{k.split('/')[-1].split('.')[0]} {v[:12]}" for k, v in data.items() if k.startswith("cohort/") and v]
    hashes += [f"split {data['split_hash'][:12]}"] if data.get("split_hash") else []
    facts.append(("data hash", ", ".join(hashes) or NA))
    notebooks = manifest.get("notebooks", [])
    executed = sum(float(n.get("seconds", 0.0)) for n in notebooks)
    facts.append(("wall time", f"{executed / 60:,.1f} min of notebook execution over {len(notebooks)} notebooks "
                               f"(this invocation {float(manifest.get('total_seconds', 0.0)) / 60:,.1f} min)"))
    facts.append(("note text", "shown (synthetic notes)" if show_text else "hidden (render.show_text)"))
    return facts


def _claims(paths: RunPaths) -> pd.DataFrame:
    compare_file = paths.table("paper_vs_reproduced.csv")
    compare = pd.read_csv(compare_file, dtype=object) if compare_file.exists() else pd.DataFrame()
    timings_file = paths.metrics_dir / "timings" / "analysis.json"
    if timings_file.exists():
        extra = pd.DataFrame(read_json(timings_file).get("paper_vs_reproduced", []), dtype=object)
        compare = pd.concat([compare, extra], ignore_index=True) if len(extra) else compare
    return compare


def load_findings(run_dir: str | Path) -> Findings:
    """The findings of the run in `run_dir` (needs `run_manifest.json`; Table 2 and the claims are empty until
    notebook 06 has run)."""
    paths = RunPaths(run_dir)
    manifest = read_json(paths.manifest)
    params = manifest.get("parameters", {})
    show_text = resolve_show_text(params.get("render.show_text", "auto"), str(params.get("data.source", "")), paths.root)
    table2 = pd.read_csv(paths.table("table2.csv")) if paths.table("table2.csv").exists() else pd.DataFrame(columns=["model"])
    timings_file = paths.metrics_dir / "timings" / "analysis.json"
    if timings_file.exists() and "train_seconds" not in table2:
        table2["train_seconds"] = table2["model"].map(read_json(timings_file).get("train_seconds", {}))
    date = dt.datetime.fromtimestamp(paths.manifest.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
    return Findings(Path(run_dir), str(manifest.get("profile", "")), _run_facts(paths, manifest, show_text),
                    with_paper_columns(table2), _claims(paths), show_text, date)


# ---------------------------------------------------------------------------------------------------------
# What a reader sees: display tables (strings), shared by the index page and the README
# ---------------------------------------------------------------------------------------------------------

def row_label(model: str) -> str:
    role = REFERENCE_ROLES.get(str(model))
    return f"{model} ({role})" if role else str(model)


def not_run_reason(row: dict) -> str:
    """Why a Table 2 row has no numbers ("" for a row that ran)."""
    status = "" if is_missing(row.get("status")) else str(row.get("status"))
    return "" if status in ("", "ok") else status


def _interval(row: dict, metric: str) -> str:
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if is_missing(lo) or is_missing(hi):
        return NA
    return f"{format_cell(metric, lo)}–{format_cell(metric, hi)}"


TABLE2_DISPLAY = [  # (our column, shown as)
    ("max_len", "max len"), ("micro_auc", "micro AUC"), ("micro_auc_ci", "micro 95% CI"), ("macro_auc", "macro AUC"),
    ("macro_auc_ci", "macro 95% CI"), ("headroom_share", "share of headroom"), ("micro_f1", "micro F1"),
    ("macro_f1", "macro F1"), ("p_at_5", "P@5"), ("map", "MAP"), ("train_seconds", "train s"),
    ("paper row", "paper row"), ("paper micro", "paper micro"), ("paper macro", "paper macro"),
]


def table2_display(f: Findings) -> pd.DataFrame:
    """Table 2 as shown: rounded per column, intervals as `low–high`, "—" where missing, and a `note` column
    saying why a row has no numbers (e.g. not run) or that it is the floor or ceiling."""
    rows = []
    for r in f.table2.to_dict("records"):
        out = {"model": row_label(r["model"])}
        for col, shown in TABLE2_DISPLAY:
            if col.endswith("_ci"):
                if f"{col}_low" in f.table2:
                    out[shown] = _interval(r, col[:-3])
            elif col in f.table2:
                out[shown] = format_cell(col, r.get(col))
        role = REFERENCE_ROLES.get(str(r["model"]))
        out["note"] = not_run_reason(r) or (f"{role}: reference row, not a model of the paper" if role else "")
        rows.append(out)
    return pd.DataFrame(rows, dtype=object)


_VERDICTS = {"yes": "holds", "holds": "holds", "true": "holds", "no": "does not hold", "false": "does not hold",
             "contradicted": "contradicted", "inconclusive": "inconclusive", "n.a.": "n.a.", "na": "n.a."}


def verdict_of(value) -> str:
    """holds | contradicted | does not hold (a point comparison) | inconclusive | n.a."""
    return NA if is_missing(value) else _VERDICTS.get(str(value).strip().lower(), str(value).strip())


def interval_columns(columns: list[str]) -> tuple[str | None, str, str] | None:
    """(point, low, high) columns of the claims' interval: `ci_low/ci_high` beside `difference`, or
    `<name>_ci_low/<name>_ci_high` beside `<name>`; None when the table has none."""
    for col in columns:
        m = re.fullmatch(r"(.*?)_?ci_low", col)
        high = col[: -len("ci_low")] + "ci_high"
        if m and high in columns:
            point = next((c for c in (m.group(1), "difference", "diff") if c and c in columns), None)
            return point, col, high
    return None


def _claim_interval(row: dict, cols: tuple[str | None, str, str] | None) -> str:
    """`+0.012 [-0.010, 0.030]`: the difference and its 95% interval ("" without)."""
    if cols is None or is_missing(row.get(cols[1])) or is_missing(row.get(cols[2])):
        return ""
    point = row.get(cols[0]) if cols[0] else None
    head = "" if is_missing(point) else f"{float(point):+.3f} "
    return f"{head}[{float(row[cols[1]]):.3f}, {float(row[cols[2]]):.3f}]"


def claims_display(f: Findings) -> pd.DataFrame:
    """The paper's claims beside ours: `claim, paper, reproduced, verdict[, difference (95% CI)], note`."""
    c = f.claims
    columns = list(c.columns)
    verdict_cols = [k for k in ("verdict", "holds") if k in columns]
    interval = interval_columns(columns)
    rows = []
    for r in c.to_dict("records"):
        out = {"claim": format_cell("quantity", r.get("quantity")), "paper": format_cell("paper", r.get("paper")),
               "reproduced": format_cell("reproduced", r.get("reproduced")),
               "verdict": verdict_of(next((r[k] for k in verdict_cols if not is_missing(r.get(k))), None))}
        out["difference (95% CI)"] = _claim_interval(r, interval)
        out["note"] = "" if is_missing(r.get("note")) else round_numbers_in_text(str(r.get("note")))
        rows.append(out)
    df = pd.DataFrame(rows, columns=["claim", "paper", "reproduced", "verdict", "difference (95% CI)", "note"], dtype=object)
    if not (df["difference (95% CI)"] != "").any():
        df = df.drop(columns=["difference (95% CI)"])
    return df


def verdict_counts(f: Findings) -> dict[str, int]:
    """How many claims got each verdict, in the order holds, contradicted, does not hold, inconclusive, n.a."""
    counts = claims_display(f)["verdict"].value_counts().to_dict() if len(f.claims) else {}
    order = ["holds", "contradicted", "does not hold", "inconclusive", "n.a."]
    return {k: int(counts[k]) for k in order + sorted(set(counts) - set(order)) if counts.get(k)}


_PHRASES = {"holds": ("holds", "hold"), "contradicted": ("is contradicted", "are contradicted"),
            "does not hold": ("does not hold", "do not hold"), "inconclusive": ("is inconclusive", "are inconclusive"),
            "n.a.": ("is not a comparison (n.a.)", "are not comparisons (n.a.)")}


def summary_sentence(f: Findings) -> str:
    """One line: how many of the paper's claims reproduced."""
    counts = verdict_counts(f)
    total = sum(counts.values())
    parts = ", ".join(f"{n} {_PHRASES.get(k, (k, k))[n != 1]}" for k, n in counts.items())
    return f"Of the paper's {total} claims checked here, {parts}." if total else "No paper claims were checked."


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table of display strings (no tabulate dependency); `|` inside cells escaped."""
    def cell(v) -> str:
        return (NA if is_missing(v) else str(v)).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)) + "\n"
