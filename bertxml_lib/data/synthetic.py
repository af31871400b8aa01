"""Notebook 01 — a synthetic EHR cohort with the properties of the paper's NYU notes (paper 4.1).

The paper's notes are private, so the suite generates notes and encounter codes that have the
properties its claims depend on (`GENERATOR_PROPERTIES` lists each beside the paper's statistic):

* Patients have ~9 notes over ~2-4 years. Chronic conditions are drawn per patient (more with
  age) and persist from their onset; acute problems are drawn per visit. Frequencies are long-tailed:
  the curated catalog (`clinical_catalog`) plus a Zipf-like tail of ICD-10-CM leaf codes (`code_pool`).
* ~3.3 raw codes per note (~4.6 after imputation) including chronic codes, which are coded on some visits only, so notebook 01's
  imputation (a chronic code seen twice is imputed forward from its first occurrence) adds labels.
* The note-type mix of paper 4.1 (progress notes ~50%, telephone ~10%, patient instructions ~5%, and
  20 types in all) plus `erroneous`, `student`, `miscellaneous` (~3%) and ~2% notes under 50
  characters, which the cohort step drops.
* Long-tailed lengths: lognormal word targets per note type (telephone short, H&P and discharge
  summaries long), overall median ~150 words and 90th percentile ~550-600 words (~800 WordPiece tokens).
* Evidence the way real notes carry it: a header (type, encounter, date, author role), sections
  (HPI, PMH, medications, Figure-1-style ROS boilerplate, exam, labs, assessment and plan); each coded
  condition is evidenced by a random choice of official description, synonym, abbreviation,
  medication or finding; negated mentions and family history name conditions the patient does not
  have; in long notes some codes are evidenced only after word ~460 (beyond 512 tokens); label noise
  (missed codes, codes without evidence); chronic codes carried without text evidence; `@name@`-style
  de-identification tags; mixed case; numbers in labs and vitals.
* Context that a bag of words cannot read (knobs `Knobs`, profile keys `data.synthetic.*`): negations
  and rule-outs drawn from the patient's organ systems and the visit's complaint, a rule-out's cue
  sometimes only in the final section; near-identical codes one per patient, the distinguishing modifier
  sometimes in a later sentence than the shared phrase; evidence only past word ~460 in long notes;
  open-vocabulary evidence (per-author habitual rewrites, typos).

Ground truth: for every note the generator records the character spans it wrote for each code
(`TRUTH_COLUMNS`: evidence, negated and family-history mentions, past history) in `raw/truth.parquet`,
beside rows without a span for coded codes the note does not evidence and active chronic conditions
it does not mention. Notebook 01 keeps note ids and texts unchanged, so the offsets index the cohort's
`text` (tested); `load_truth(out_dir)` reads them back.

Every patient's randomness comes from its own stream, seeded by (seed, patient index), so output is
identical whatever the batch size, and batches stream with bounded memory.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data import icd
from bertxml_lib.data.clinical_catalog import (
    BOILERPLATE,
    CATALOG,
    FILLER,
    GENERIC_MEDS,
    NOTE_TYPES,
    RULE_OUT_TEMPLATES,
    SEX_WORDS,
    SHORT_TEXTS,
    SIBLING_GROUPS,
    SYSTEMS,
    TEMPLATES,
    VARIANT_RULES,
)

# Each property of the real notes that the paper's claims rely on, beside how the generator builds it in.
GENERATOR_PROPERTIES: list[dict] = [dict(zip(("property", "paper", "generator"), row)) for row in (
    ("patients and notes", "7.5M notes from ~1M patients (~7.5 notes/patient after filters)",
     "lognormal notes per patient, mean ~9, dated uniformly over a 2-4 year follow-up"),
    ("codes per note", "4.46 in-scope codes per training note, chronic imputation included",
     "~3.3 raw codes per note (chronic codes coded on 10-85% of visits by note type); ~4.6 after notebook 01's imputation"),
    ("chronic imputation", "chronic code seen twice -> imputed on all notes since its first occurrence (AHRQ CCI)",
     "chronic conditions persist from onset but are coded on some visits only"),
    ("code frequencies", "2,292 codes with >1,000 training notes; Table 4 top codes I10, E78.5, I25.10, ...",
     "catalog weights follow Table 4 counts; Zipf-like tail of ICD-10-CM leaf codes up to n_codes"),
    ("note types", "~50 types; progress >50%, telephone 10%, patient instructions 5%",
     "23 types: progress 50%, telephone 10%, instructions 5%, 17 others, 3% excluded types"),
    ("excluded notes", "erroneous, student, miscellaneous notes and notes < 50 characters dropped",
     "3% notes of the three excluded types; 2% notes under 50 characters"),
    ("note length", "median ~150 words, 90th percentile ~800 tokens",
     "lognormal word targets per type; median ~160 words, p90 ~550 words"),
    ("evidence", "Figure 1/3: ROS boilerplate, headers, abbreviations, 's/p labral repair'",
     "description / synonym / abbreviation / medication / finding per coded condition, in sections"),
    ("negation and family history", "real notes mention conditions the patient does not have",
     "'denies chest pain', 'no history of ...', 'mother with breast cancer' for uncoded conditions"),
    ("long-range evidence", "1,024-token models beat 512 (Table 2)",
     "in notes over ~600 words, some codes are evidenced only after word ~460"),
    ("label noise", "encounter codes are incomplete and partly unsupported by the note",
     "3% of acute problems uncoded; 4% of notes get a code without evidence; 15% of coded chronic codes lack evidence"),
    ("near-identical codes", "G44.029 confused with G44.329 (AUC 0.57)",
     "G44.x29, C50.91x, E11.9/E11.65, I48.x: one per patient; shared phrase + modifier in another sentence (p_sibling_split)"),
    ("pertinent negatives", "negations name conditions relevant to the visit",
     "negated mentions from the patient's organ systems and the complaint (p_local_negation); rule-outs (p_rule_out)"),
    ("open vocabulary", "abbreviations, misspellings and personal shorthand vary by author",
     "per-author habitual rewrites (p_author_variant, n_authors) and typos (p_typo) in evidence phrases"),
)]



class Knobs(NamedTuple):
    """How often each context phenomenon occurs. The defaults repeat `data.synthetic.*` of
    configs/profiles.yaml (base), where each rate's reason is given (a test keeps the two equal)."""

    p_negation: float = 0.6          # notes with pertinent negatives (1-3 negated mentions)
    p_local_negation: float = 0.7    # negated mentions drawn from the patient's / complaint's organ systems
    p_rule_out: float = 0.3          # notes with an acute complaint that rule out a same-system condition
    p_late_cue: float = 0.5          # rule-outs written as an early suspicion and a cue in the final section
    p_late_evidence: float = 0.35    # codes of long notes evidenced only in the final section (past word ~460)
    p_sibling_split: float = 0.5     # sibling-code evidence as shared phrase + modifier in a later sentence
    p_author_variant: float = 0.3    # evidence phrases written in their author's habitual rewrite
    p_typo: float = 0.05             # evidence phrases with one misspelled word
    n_authors: int = 40              # simulated note authors, each with their own habits

    def checked(self) -> "Knobs":
        for name, value in self._asdict().items():
            if name == "n_authors":
                ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
            else:
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 <= value <= 1.0
            if not ok:
                expected = "an integer >= 1" if name == "n_authors" else "a probability in [0, 1]"
                raise ValueError(f"data.synthetic.{name} must be {expected}, got {value!r}")
        return self


def make_knobs(knobs: "Knobs | dict | None") -> Knobs:
    """`Knobs` from a dict of `data.synthetic.*` values (None: the defaults); unknown names are errors."""
    if knobs is None or isinstance(knobs, Knobs):
        return (knobs or Knobs()).checked()
    unknown = sorted(set(knobs) - set(Knobs._fields))
    if unknown:
        raise ValueError(f"unknown data.synthetic knob(s) {unknown}; expected some of {list(Knobs._fields)}")
    return Knobs(**knobs).checked()


#: One row per span the generator wrote (start/end: character offsets into the note text, end exclusive)
#: or per code without one (start = end = -1). kind: evidenced | negated | family_history | past_history
#: | coded_no_evidence (a code on the note with no evidence in it) | active_no_evidence (an active chronic
#: condition neither coded nor written). part: phrase (a whole evidence phrase) | shared | modifier (a
#: sibling code's shared phrase and its distinguishing sentence) | cue (a negation, rule-out or family
#: history sentence, cue included) | mention (a rule-out's early suspicion, its cue later) | "" (no span).
#: form: catalog | variant (the author's habitual rewrite) | typo | "" (no span).
TRUTH_COLUMNS = ["note_id", "code", "kind", "part", "form", "start", "end"]
#: "Token 512" as a whitespace-word proxy: the generator's notes average ~1.6 WordPiece tokens per
#: whitespace word (measured on the quick cohort: 1.63 with the general bert-base-uncased vocabulary, 1.59
#: with a ci-profile EHR WordPiece), so the 512th token falls near word 512 / 1.63 ~ 315. Notebook 01's
#: phenomena table and the oracle's first-512 variant both use `token_512_offset`.
TOKEN_512_WORDS = 315


def token_512_offset(text: str, words: int = TOKEN_512_WORDS) -> int:
    """Character offset where whitespace word number `words` (0-based) starts: spans starting at or
    after it lie past the 512-token proxy (len(text) when the note is shorter)."""
    rest = text.split(None, words)      # the last piece starts at word `words` when the text has more
    return len(text) - len(rest[-1]) if len(rest) > words else len(text)


def load_truth(out_dir: str | Path) -> pd.DataFrame:
    """The generator's ground truth (`TRUTH_COLUMNS`) of a synthetic run; FileNotFoundError otherwise."""
    path = RunPaths(out_dir).truth
    if not path.exists():
        raise FileNotFoundError(f"{path}: no generator ground truth (only data.source=synthetic writes it)")
    return pd.read_parquet(path)


_BASE_DAY = dt.date(2014, 1, 1).toordinal()
_KIND_WEIGHTS = {"description": 0.2, "synonym": 0.35, "abbreviation": 0.15, "medication": 0.15, "finding": 0.15}
# Rates: notes under 50 characters; documented acute problems the coder misses; notes given a code
# without evidence; coded chronic conditions the text evidences; uncoded active chronic conditions
# listed in the PMH (codes of long notes evidenced only in the final section: Knobs.p_late_evidence).
_P_SHORT, _P_MISSED, _P_EXTRA, _P_EVIDENCED, _P_BACKGROUND = 0.02, 0.03, 0.04, 0.85, 0.45
_LONG_WORDS, _LATE_START = 600, 460
_LATE_PREFIX = {"medication": ("continue ", "refilled ", "start ", "on "), "finding": ("", "today ", "most recent ")}
_RANGE = re.compile(r"<(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)>")


def _compile(phrase: str) -> tuple:
    """'BP <142-178>/<88-104>' -> ('BP ', (142, 178, 0), '/', (88, 104, 0), ''): ranges drawn per use."""
    parts = _RANGE.split(phrase)
    out: list = [parts[0]]
    for i in range(1, len(parts), 3):
        lo, hi = parts[i], parts[i + 1]
        decimals = len(lo.split(".")[1]) if "." in lo else 0
        out += [(float(lo), float(hi), decimals), parts[i + 2]]
    return tuple(out)


def _render(t: tuple, r: random.Random) -> str:
    if len(t) == 1:
        return t[0]
    out = [t[0]]
    for i in range(1, len(t), 2):
        lo, hi, d = t[i]
        out.append(str(r.randint(int(lo), int(hi))) if d == 0 else f"{r.uniform(lo, hi):.{d}f}")
        out.append(t[i + 1])
    return "".join(out)


class _Code(NamedTuple):
    code: str
    chronic: bool
    kinds: tuple       # (kind names, cumulative kind weights) over the kinds it has phrases for
    phrases: dict      # kind -> tuple of compiled phrases
    sex: str
    requires: str
    group: str         # the sibling group (`SIBLING_GROUPS`) or the code itself: one member per patient


SIBLING_OF = {code: g for g, spec in SIBLING_GROUPS.items() for code in spec["modifiers"]}


def system_of(code: str) -> str:
    """The organ system of a code (`clinical_catalog.SYSTEMS`), 'general' when none is listed."""
    return SYSTEMS.get(code[:3]) or SYSTEMS.get(code[:1], "general")


class _Pool(NamedTuple):
    frame: pd.DataFrame
    chronic: tuple     # (codes tuple of _Code, cumulative weights)
    acute: tuple
    conditional: tuple  # ((_Code, per-visit probability), ...) for codes with a `requires` prefix


def _tail_synonyms(desc: str) -> list[str]:
    """Simple derived synonyms of an official description: drop parentheses and 'unspecified', cut at the first comma."""
    plain = re.sub(r"\s*\([^)]*\)", "", desc).replace(", unspecified", "").replace("unspecified ", "").strip()
    return [s for s in dict.fromkeys([plain.lower(), desc.split(",")[0].lower()]) if s and s != desc.lower()]


@lru_cache(maxsize=8)
def _build_pool(n_codes: int, seed: int) -> _Pool:
    if isinstance(n_codes, bool) or not isinstance(n_codes, (int, np.integer)) or n_codes < 1:
        raise ValueError(f"n_codes must be a positive integer, got {n_codes!r}")
    catalog = sorted(CATALOG, key=lambda c: (-c.weight, c.code))[:n_codes]
    rows = [dict(code=c.code, description=icd.describe(c.code), chronic=c.chronic, weight=float(c.weight), source="catalog")
            for c in catalog]
    n_tail = n_codes - len(rows)
    if n_tail > 0:
        taken = {c.code for c in CATALOG}
        leaves = np.array([c for c in icd.leaf_codes() if c[0] not in "VWXY" and c not in taken])
        if n_tail > len(leaves):
            raise ValueError(f"n_codes={n_codes} exceeds the {len(leaves) + len(rows)} codes available")
        # Frequent real codes come from a few chapters: injuries (S, T) and obstetrics/perinatal (O, P)
        # are down-weighted before a weighted draw without replacement (Efraimidis-Spirakis keys).
        chapter_w = np.where(np.isin(np.array([c[0] for c in leaves]), list("STOP")), 0.15, 1.0)
        keys = np.log(np.random.default_rng([seed, n_codes]).random(len(leaves))) / chapter_w
        picked = leaves[np.argsort(-keys, kind="stable")[:n_tail]]
        w_min, r0 = min(r["weight"] for r in rows), len(rows)
        rows += [dict(code=c, description=icd.describe(c), chronic=icd.is_chronic(c), weight=w_min * r0 / (r0 + j + 1),
                      source="tail") for j, c in enumerate(picked.tolist())]
    frame = pd.DataFrame(rows)
    by_code = {c.code: c for c in CATALOG}
    groups: dict[bool, list] = {True: [], False: []}
    conditional: list = []
    for row in rows:
        cond = by_code.get(row["code"])
        phrases = {"description": (row["description"], row["description"].lower())}
        if cond:
            phrases |= {"synonym": cond.synonyms, "abbreviation": cond.abbreviations,
                        "medication": cond.medications, "finding": cond.findings}
        else:
            phrases["synonym"] = tuple(_tail_synonyms(row["description"]))
        phrases = {k: tuple(_compile(p) for p in v) for k, v in phrases.items() if v}
        kinds = list(phrases)
        cum = np.cumsum([_KIND_WEIGHTS[k] for k in kinds]).tolist()
        code = _Code(row["code"], row["chronic"], (tuple(kinds), cum), phrases,
                     cond.sex if cond else "", cond.requires if cond else "", SIBLING_OF.get(row["code"], row["code"]))
        if code.requires:
            conditional.append((code, min(0.5, row["weight"] / 100)))
        else:
            groups[row["chronic"]].append((code, row["weight"]))

    def cum_table(items):
        return tuple(c for c, _ in items), np.cumsum([w for _, w in items]).tolist()

    return _Pool(frame, cum_table(groups[True]), cum_table(groups[False]), tuple(conditional))


def code_pool(n_codes: int, seed: int) -> pd.DataFrame:
    """The generator's codes: catalog codes (highest weights first) plus a long tail of ICD-10-CM leaf
    codes drawn deterministically by `seed`, up to `n_codes`. Columns code, description, chronic,
    weight (relative prevalence within chronic or acute codes, Zipf-like), source ('catalog'|'tail')."""
    return _build_pool(n_codes, seed).frame.copy()


def _poisson(r: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, k, p = math.exp(-lam), 0, r.random()
    while p > limit:
        k, p = k + 1, p * r.random()
    return k


def _draw(r: random.Random, table: tuple, k: int, sex: str, exclude: set) -> list:
    """Up to k distinct codes drawn by weight, skipping wrong-sex codes and codes (or sibling groups) in
    `exclude`."""
    codes, cum = table
    if k <= 0 or not codes:
        return []
    out: list = []
    for c in r.choices(codes, cum_weights=cum, k=2 * k + 2):
        if c.code in exclude or c.group in exclude or (c.sex and c.sex != sex):
            continue
        exclude.update((c.code, c.group))
        out.append(c)
        if len(out) == k:
            break
    return out


def _pick(r: random.Random, c: _Code, names_only: bool = False) -> tuple[tuple, str]:
    """(compiled phrase, kind): one piece of evidence for `c`, its kind drawn by `_KIND_WEIGHTS`."""
    kinds, cum = c.kinds
    kind = kinds[bisect.bisect(cum, r.random() * cum[-1])]
    if names_only and kind in ("medication", "finding"):
        kind = "synonym" if "synonym" in c.phrases else "description"
    return r.choice(c.phrases[kind]), kind


def _compiled(pools: dict) -> dict:
    return {k: tuple(_compile(p) for p in v) for k, v in pools.items()}


_TYPE_CUM = np.cumsum([t[1] for t in NOTE_TYPES]).tolist()
_BOILER = _compiled(BOILERPLATE)
_TPL = _compiled(TEMPLATES)
_RULE_OUT = _compiled(RULE_OUT_TEMPLATES)
_FILL = {k: (v, [len(p.split()) for p in FILLER[k]]) for k, v in _compiled(FILLER).items()}
_SHORT = _compiled({"short": SHORT_TEXTS})["short"]
# Negatable (phrase, category, code) entries (conditions, not encounters: no Z codes), all and by organ
# system; rule-outs name acute conditions; family-history entries.
_NEGATABLE = tuple((_compile(p), c.code[:3], c.code) for c in CATALOG if not c.code.startswith("Z")
                   for p in c.synonyms + c.abbreviations)
_NEG_BY_SYSTEM: dict[str, tuple] = {}
for _entry in _NEGATABLE:
    _NEG_BY_SYSTEM.setdefault(system_of(_entry[2]), []).append(_entry)
_NEG_BY_SYSTEM = {k: tuple(v) for k, v in _NEG_BY_SYSTEM.items()}
_ACUTE_NEG_BY_SYSTEM = {k: tuple(e for e in v if not icd.is_chronic(e[2])) for k, v in _NEG_BY_SYSTEM.items()}
_FAMILY = tuple((_compile(p), c.code[:3], c.code) for c in CATALOG if c.family for p in c.synonyms[:2])
_SIBLINGS = {g: (tuple(_compile(p) for p in spec["shared"]), {c: tuple(_compile(p) for p in m)
                                                               for c, m in spec["modifiers"].items()})
             for g, spec in SIBLING_GROUPS.items()}
_EARLY_SLOTS = {"hx": ("hpi", "pmh", "cc"), "reason": ("cc", "hpi"), "meds": ("meds",), "labs": ("labs",)}
_RULE_KEYS = tuple(sorted(VARIANT_RULES, key=lambda k: (-len(k), k)))
_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")
# Span markers woven into the text while a note is assembled, removed by `_strip_marks`: \x01<id>\x02 opens
# span <id>, \x03 closes the innermost open span. None is whitespace, so word counts are unchanged.
_MARK = re.compile(r"\x01(\d+)\x02|\x03")


@lru_cache(maxsize=4096)
def _author_habits(seed: int, author: int) -> tuple:
    """(pattern, {word: rewrite}) of one author: about half of `VARIANT_RULES`, one alternative each."""
    r = random.Random(int(np.random.SeedSequence([seed, 1 << 30, author]).generate_state(1, np.uint64)[0]))
    habits = {k: r.choice(VARIANT_RULES[k]) for k in _RULE_KEYS if r.random() < 0.5}
    if not habits:
        return None, {}
    keys = [k for k in _RULE_KEYS if k in habits]
    return re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b", re.IGNORECASE), habits


def _typo(r: random.Random, text: str) -> str:
    """One misspelled word (a swap, a dropped or a doubled letter) in a word of 4+ letters."""
    words = list(_TYPO_WORD.finditer(text))
    if not words:
        return text
    m = r.choice(words)
    w, i = m.group(), r.randrange(1, len(m.group()) - 1)
    op = r.randrange(3)
    w = w[:i] + w[i + 1] + w[i] + w[i + 2:] if op == 0 else (w[:i] + w[i + 1:] if op == 1 else w[:i] + w[i] + w[i:])
    return text[:m.start()] + w + text[m.end():]


def _strip_marks(text: str) -> tuple[str, list[tuple[int, int, int]]]:
    """(text without markers, [(span id, start, end), ...]) with offsets into the clean text."""
    out, spans, stack, pos, n = [], [], [], 0, 0
    for m in _MARK.finditer(text):
        piece = text[pos:m.start()]
        out.append(piece)
        n, pos = n + len(piece), m.end()
        if m.group(1) is not None:
            stack.append((int(m.group(1)), n))
        else:
            key, start = stack.pop()
            spans.append((key, start, n))
    out.append(text[pos:])
    return "".join(out), spans


class _Writer:
    """Writes one note's tagged phrases: evidence in the author's habits and with typos, and the meta
    data (code, kind, part, form) of every span it opens."""

    def __init__(self, r: random.Random, knobs: Knobs, habits: tuple):
        self.r, self.k, self.habits, self.meta = r, knobs, habits, []

    def tag(self, text: str, code: str, kind: str, part: str, form: str = "catalog") -> str:
        self.meta.append((code, kind, part, form))
        return f"\x01{len(self.meta) - 1}\x02{text}\x03"

    def phrase(self, t: tuple, code: str, kind: str, part: str) -> str:
        """Render a compiled evidence phrase, maybe in the author's habit and with a typo, and tag it."""
        r, text, form = self.r, _render(t, self.r), "catalog"
        pattern, habits = self.habits
        if r.random() < self.k.p_author_variant and pattern is not None:
            rewritten = pattern.sub(lambda m: habits[m.group(0).lower()], text)
            form = "variant" if rewritten != text else form
            text = rewritten
        if r.random() < self.k.p_typo:
            misspelled = _typo(r, text)
            form = "typo" if misspelled != text else form
            text = misspelled
        return self.tag(text, code, kind, part, form)

    def mentions(self, table: tuple, templates: tuple, n: int, exclude: set, kind: str, local: tuple = ()) -> list[str]:
        """Up to n negated / family-history sentences (cue included in the span) of conditions whose
        category is outside `exclude`; with `local` (tables by organ system), a share p_local_negation
        of them comes from those systems."""
        r, out = self.r, []
        for _ in range(4 * n):
            pool = r.choice(local) if local and r.random() < self.k.p_local_negation else table
            if not pool:
                continue
            phrase, category, code = r.choice(pool)
            if category not in exclude:
                exclude.add(category)
                sentence = _render(r.choice(templates), r).replace("{x}", _render(phrase, r))
                out.append(self.tag(sentence, code, kind, "cue"))
                if len(out) == n:
                    break
        return out


def _fill(r: random.Random, spec: str, need: int) -> str:
    """At least `need` words of filler: sentences of the first pool, ~30% from the others, each pool
    walked in a shuffled order before any sentence repeats."""
    names = spec.split("+")
    orders: dict[str, list] = {}
    chosen, got = [], 0
    while got < need:
        name = names[0] if len(names) == 1 or r.random() < 0.7 else r.choice(names[1:])
        pool, sizes = _FILL[name]
        if not orders.get(name):
            orders[name] = r.sample(range(len(pool)), len(pool))
        i = orders[name].pop()
        chosen.append(_render(pool[i], r))
        got += sizes[i]
    return " ".join(chosen)


def _render_note(w: _Writer, ntype: tuple, day: int, age: int, sex: str, items: list, background: list,
                 exclude: set, systems: tuple) -> str:
    """One note's text, with span markers. `items` holds (_Code, evidenced) for the conditions the note is
    about (coded or missed by the coder); `background` uncoded chronic conditions it may list in the PMH;
    `exclude` the ICD categories that negations and family history must not name; `systems` the organ
    systems of the visit's complaint (first) and the patient's conditions."""
    r, k = w.r, w.k
    name, _, median, sigma, _, _, encounters, roles, layout = ntype
    target = min(3000, int(r.lognormvariate(math.log(median), sigma)))
    slots = {slot for _, slot in layout}
    has_lead = any(s.startswith("lead:") for s in slots)
    long_note, deferred = target >= _LONG_WORDS, False
    early: dict[str, list] = {"hx": [], "reason": [], "meds": [], "labs": []}
    late: list[str] = []
    for c, evidenced in items:
        if not evidenced:
            continue
        # In long notes some codes are evidenced only in the final section, past word ~460; every other
        # code has its first piece of evidence in a section before the filler (history, reason, meds).
        only_late = long_note and r.random() < k.p_late_evidence
        deferred |= only_late
        name_slot = "hx" if c.chronic else "reason"
        if c.group in _SIBLINGS and r.random() < k.p_sibling_split:
            shared, modifiers = _SIBLINGS[c.group]
            (late if only_late else early[name_slot]).append(w.phrase(r.choice(shared), c.code, "evidenced", "shared"))
            if modifiers[c.code]:
                late.append(w.phrase(r.choice(modifiers[c.code]), c.code, "evidenced", "modifier"))
            continue
        seen = set()
        for copy in range(1 + (r.random() < 0.35)):
            t, kind = _pick(r, c)
            slot = {"medication": "meds", "finding": "labs"}.get(kind, name_slot)
            placeable = not slots.isdisjoint(_EARLY_SLOTS[slot]) or (has_lead and slot in ("hx", "reason"))
            if copy == 0 and not only_late and (slot == "labs" or not placeable):
                (t, kind), slot = _pick(r, c, names_only=True), name_slot
            if t in seen:
                continue
            seen.add(t)
            text = w.phrase(t, c.code, "evidenced", "phrase")
            if only_late or (copy > 0 and (not placeable or r.random() < 0.45)):
                late.append(r.choice(_LATE_PREFIX.get(kind, ("",))) + text)
            else:
                early[slot].append(text)
    pmh = [w.phrase(_pick(r, c, names_only=True)[0], c.code, "past_history", "phrase") for c in background] \
        if "pmh" in slots else []
    negs = []
    if r.random() < k.p_negation:
        local = tuple(_NEG_BY_SYSTEM[s] for s in systems if s in _NEG_BY_SYSTEM)
        negs = w.mentions(_NEGATABLE, _TPL["negation"], r.randint(1, 3), exclude, "negated", local)
    complaint = systems[0] if systems and items and not items[0][0].chronic else ""
    if complaint and r.random() < k.p_rule_out:
        # Rule out a condition of the complaint's organ system: written as one cue sentence, or as an early
        # suspicion (a cue-less mention) that the final section excludes.
        pool = [e for e in _ACUTE_NEG_BY_SYSTEM.get(complaint, ()) if e[1] not in exclude]
        if pool:
            phrase, category, code = r.choice(pool)
            exclude.add(category)
            x = _render(phrase, r)
            cue = _render(r.choice(_RULE_OUT["excluded"]), r).replace("{x}", x)
            if r.random() < k.p_late_cue:
                early["reason"].append(w.tag(_render(r.choice(_RULE_OUT["suspect"]), r).replace("{x}", x), code,
                                             "negated", "mention"))
                late.append(w.tag(cue, code, "negated", "cue"))
            else:
                negs.append(w.tag(cue, code, "negated", "cue") + ".")
    if "pmh" in slots and ("hpi" not in slots or r.random() < 0.5):
        pmh, early["hx"] = pmh + early["hx"], []
    elif "hpi" not in slots:                 # reports, calls: history joins the reason for the note
        early["reason"], early["hx"] = early["reason"] + early["hx"], []
    reason = ", ".join(early["reason"]) or r.choice(("follow up of chronic conditions", "routine follow up",
                                                      "medication refill", "test results"))
    sections: list[tuple[str, str, str]] = []   # (heading, text, kind: fixed | optional | fill)
    for heading, slot in layout:
        kind, text = "fixed", ""
        if slot == "cc":
            text = reason
        elif slot == "hpi":
            tpl = r.choice(TEMPLATES["hpi"]) if early["hx"] else "{age} yo {sex} presents for {reason}."
            text = " ".join([tpl.format(age=age, sex=r.choice(SEX_WORDS[sex]), hx=", ".join(early["hx"]), reason=reason)] + negs)
        elif slot.startswith("lead:"):
            text = _render(r.choice(_TPL[slot[5:]]), r).replace("{reason}", reason)
        elif slot == "neg":
            text = " ".join(negs)
        elif slot == "pmh":
            text = ", ".join(pmh) or "none"
        elif slot == "meds":
            text = ", ".join(early["meds"] + r.sample(GENERIC_MEDS, r.randint(0, 2))) or "none"
        elif slot == "labs":
            text = ", ".join(early["labs"])
        elif slot == "fhx":
            text = " ".join(w.mentions(_FAMILY, _TPL["family"], r.randint(0, 2), exclude, "family_history")) \
                or "noncontributory."
        elif slot == "late":
            text = " ".join(f"{i}. {t}{_render(r.choice(_TPL['plan']), r)}" for i, t in enumerate(late, 1))
        elif slot.startswith("b:"):
            kind, text = "optional", _render(r.choice(_BOILER[slot[2:]]), r)
        elif slot.startswith("f:"):
            kind, text = "fill", slot[2:]
        if text:
            sections.append((heading, text, kind))
    header = (f"{name.upper() if r.random() < 0.5 else name}\nencounter type: {r.choice(encounters)}   date of service: "
              f"{dt.date.fromordinal(_BASE_DAY + day):%m/%d/%Y}\nprovider: @name@, {r.choice(roles)}")
    counts = [0 if k == "fill" else len(t.split()) + len(h.split()) for h, t, k in sections]
    words = len(header.split()) + sum(n for (_, _, k), n in zip(sections, counts) if k == "fixed")
    # Boilerplate goes in while the note's word budget allows; filler then tops it up to its target,
    # and past word ~460 when a code's only evidence is in the final section.
    parts, fill_at = [header], None
    for (heading, text, kind), n in zip(sections, counts):
        if kind == "optional" and words + n > target:
            continue
        words += n if kind == "optional" else 0
        if kind == "fill":
            fill_at, fill = len(parts), (heading, text)
        else:
            parts.append(f"{heading}: {text}" if heading else text)
    if fill_at is not None:
        late_words = counts[-1] if deferred else 0          # every layout ends with its `late` section
        need = max(target - words, _LATE_START - (words - late_words) if deferred else 0)
        if need > 0:
            parts.insert(fill_at, (f"{fill[0]}: " if fill[0] else "") + _fill(r, fill[1], need))
    text = "\n".join(parts)
    return text.lower() if r.random() < 0.25 else text


_NOTES_MU, _NOTES_SIGMA = math.log(9.0) - 0.18, 0.6   # lognormal notes per patient with mean ~9


def _simulate_patient(pool: _Pool, seed: int, idx: int, knobs: Knobs, notes: dict, codes: dict, truth: dict) -> None:
    """Append one patient's notes, codes and ground truth; all randomness from the (seed, idx) stream."""
    r = random.Random(int(np.random.SeedSequence([seed, idx]).generate_state(1, np.uint64)[0]))
    pid = f"P{idx:07d}"
    age = 18 + int(74 * r.betavariate(2.2, 1.8))
    sex = "F" if r.random() < 0.56 else "M"
    n_notes = min(60, max(1, round(r.lognormvariate(_NOTES_MU, _NOTES_SIGMA))))
    start, span = r.randrange(4 * 365), r.uniform(2.0, 4.0) * 365
    days = sorted(start + int(r.random() * span) for _ in range(n_notes))
    chronic = _draw(r, pool.chronic, _poisson(r, 1.6 + 5.2 * (age - 18) / 74), sex, set())
    have = tuple(c.code for c in chronic)
    # 70% of conditions predate follow-up; the rest start at one of the patient's visits.
    onsets = [-1 if r.random() < 0.7 else r.choice(days) for _ in chronic]
    # Most notes of a patient come from one author (the treating clinician), the rest from anyone.
    primary = r.randrange(knobs.n_authors)
    # Encounter codes that need a condition (chemotherapy needs a cancer) recur on that patient's visits.
    conditional = [(c, p) for c, p in pool.conditional
                   if (not c.sex or c.sex == sex) and any(h.startswith(c.requires) for h in have)]
    for k, day in enumerate(days):
        ntype = NOTE_TYPES[bisect.bisect(_TYPE_CUM, r.random() * _TYPE_CUM[-1])]
        p_chronic, acute_mean = ntype[4], ntype[5]
        active = [c for c, onset in zip(chronic, onsets) if onset <= day]
        items = [(c, r.random() < _P_EVIDENCED) for c in active if r.random() < p_chronic]
        labels = [c.code for c, _ in items]
        background = [c for c in active if c.code not in labels and r.random() < _P_BACKGROUND]
        acute: list = []
        for c in _draw(r, pool.acute, _poisson(r, acute_mean), sex, set(labels)):
            acute.append((c, True))
            if r.random() >= _P_MISSED:      # label noise: the coder misses a documented problem
                labels.append(c.code)
        for c, p in conditional:
            if r.random() < p and c.code not in labels:
                acute.append((c, True))
                labels.append(c.code)
        items = acute + items                # the visit's complaint first
        if r.random() < _P_EXTRA:            # label noise: a code the note gives no evidence for
            labels += [c.code for c in _draw(r, pool.acute, 1, sex, set(labels))]
        nid = f"{pid}-{k:02d}"
        author = primary if r.random() < 0.6 else r.randrange(knobs.n_authors)
        writer = _Writer(r, knobs, _author_habits(seed, author))
        if r.random() < _P_SHORT:
            text, spans = _render(r.choice(_SHORT), r), []
        else:
            exclude = {c[:3] for c in have} | {c.code[:3] for c, _ in items}
            systems = tuple(dict.fromkeys(system_of(c.code) for c, _ in acute + [(c, 0) for c in chronic]))
            text, spans = _strip_marks(_render_note(writer, ntype, day, age, sex, items, background, exclude, systems))
        for key, value in zip(("patient_id", "note_id", "day", "note_type", "text"), (pid, nid, day, ntype[0], text)):
            notes[key].append(value)
        codes["note_id"] += [nid] * len(labels)
        codes["code"] += labels
        _add_truth(truth, nid, spans, writer.meta, labels, [c.code for c in active])


def _add_truth(truth: dict, nid: str, spans: list, meta: list, labels: list, active: list) -> None:
    """Rows of one note: its spans, then coded codes it does not evidence and active chronic conditions
    it neither codes nor mentions (no span)."""
    rows = sorted((start, end, *meta[key]) for key, start, end in spans)
    for start, end, code, kind, part, form in rows:
        for col, value in zip(TRUTH_COLUMNS, (nid, code, kind, part, form, start, end)):
            truth[col].append(value)
    evidenced = {row[2] for row in rows if row[3] == "evidenced"}
    mentioned = {row[2] for row in rows}
    extra = [(c, "coded_no_evidence") for c in dict.fromkeys(labels) if c not in evidenced]
    extra += [(c, "active_no_evidence") for c in active if c not in mentioned and c not in labels]
    for code, kind in extra:
        for col, value in zip(TRUTH_COLUMNS, (nid, code, kind, "", "", -1, -1)):
            truth[col].append(value)


def generate_synthetic(n_patients: int, n_codes: int, seed: int, batch_patients: int = 2000,
                       knobs: Knobs | dict | None = None, with_truth: bool = False) -> Iterator[tuple]:
    """Yield (notes, codes) per batch of patients in the raw-source schema of docs/DESIGN.md, or with
    `with_truth` (notes, codes, truth) with the generator's ground truth (`TRUTH_COLUMNS`).

    notes: patient_id, note_id, note_date (datetime64[ns]), note_type, text; codes: note_id, code.
    The same seed and knobs give the same rows whatever `batch_patients` is."""
    for name, value, low in (("n_patients", n_patients, 1), ("batch_patients", batch_patients, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"generate_synthetic: {name} must be an integer >= {low}, got {value!r}")
    knobs = make_knobs(knobs)
    pool = _build_pool(n_codes, seed)
    for lo in range(0, n_patients, batch_patients):
        notes = {k: [] for k in ("patient_id", "note_id", "day", "note_type", "text")}
        codes: dict[str, list] = {"note_id": [], "code": []}
        truth: dict[str, list] = {k: [] for k in TRUTH_COLUMNS}
        for idx in range(lo, min(lo + batch_patients, n_patients)):
            _simulate_patient(pool, seed, idx, knobs, notes, codes, truth)
        dates = (np.datetime64(dt.date.fromordinal(_BASE_DAY), "D") + np.array(notes.pop("day"), dtype="int64"))
        frame = pd.DataFrame(notes).assign(note_date=dates.astype("datetime64[ns]"))
        out = (frame[["patient_id", "note_id", "note_date", "note_type", "text"]],
               pd.DataFrame(codes, columns=["note_id", "code"]).astype(str))
        if with_truth:
            out += (pd.DataFrame(truth, columns=TRUTH_COLUMNS).astype({"start": "int32", "end": "int32"}),)
        yield out


def write_synthetic(raw_dir: str | Path, n_patients: int, n_codes: int, seed: int, batch_patients: int = 2000,
                    knobs: Knobs | dict | None = None) -> dict:
    """Stream the cohort into raw_dir/notes.parquet, raw_dir/codes.parquet and the ground truth
    raw_dir/truth.parquet (write-then-rename, so an interrupted run leaves none half-written). Returns
    counts and timing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw_dir = Path(raw_dir)
    note_schema = pa.schema([("patient_id", pa.string()), ("note_id", pa.string()), ("note_date", pa.timestamp("ns")),
                             ("note_type", pa.string()), ("text", pa.string())])
    code_schema = pa.schema([("note_id", pa.string()), ("code", pa.string())])
    truth_schema = pa.schema([(c, pa.int32() if c in ("start", "end") else pa.string()) for c in TRUTH_COLUMNS])
    t0, n_notes, n_rows, n_truth, distinct = time.perf_counter(), 0, 0, 0, set()
    with atomic_path(raw_dir / "notes.parquet") as notes_tmp, atomic_path(raw_dir / "codes.parquet") as codes_tmp, \
            atomic_path(raw_dir / "truth.parquet") as truth_tmp:
        with pq.ParquetWriter(notes_tmp, note_schema) as nw, pq.ParquetWriter(codes_tmp, code_schema) as cw, \
                pq.ParquetWriter(truth_tmp, truth_schema) as tw:
            for notes, codes, truth in generate_synthetic(n_patients, n_codes, seed, batch_patients, knobs, True):
                nw.write_table(pa.Table.from_pandas(notes, schema=note_schema, preserve_index=False))
                cw.write_table(pa.Table.from_pandas(codes, schema=code_schema, preserve_index=False))
                tw.write_table(pa.Table.from_pandas(truth, schema=truth_schema, preserve_index=False))
                n_notes, n_rows, n_truth = n_notes + len(notes), n_rows + len(codes), n_truth + len(truth)
                distinct.update(codes["code"].unique())
    seconds = time.perf_counter() - t0
    return {"n_patients": n_patients, "n_notes": n_notes, "n_code_rows": n_rows, "n_distinct_codes": len(distinct),
            "n_truth_rows": n_truth, "codes_per_note": n_rows / max(n_notes, 1), "seconds": round(seconds, 3),
            "notes_per_second": round(n_notes / max(seconds, 1e-9), 1), "seed": seed, "n_codes": n_codes,
            "knobs": make_knobs(knobs)._asdict()}
