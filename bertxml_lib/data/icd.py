"""Notebooks 01 and 06 — ICD-10-CM helpers (paper 4.1 chronic imputation, 4.4 related-code confusion).

Codes are kept in the dotted form (`I25.10`). Official descriptions come from the PyPI package
`simple_icd_10_cm`, imported lazily: `normalize_code`, `is_chronic` and `related_codes` are pure
string logic and never pay the package's parse time; `describe`, `code_parent` and `leaf_codes` load
it once per process.

Chronic conditions. The paper imputes "ICD codes related to chronic conditions as classified by AHRQ"
(the Chronic Condition Indicator, CCI; Friedman et al. 2006, Chi et al. 2011). The CCI table is not
available offline, so `CHRONIC_PREFIXES` approximates it with the ICD-10-CM categories (and a few
subcategories) that the CCI marks chronic: malignancies, diabetes and other endocrine disorders,
lipid disorders, obesity, chronic mental and substance-use disorders, chronic neurological disease,
hypertension, ischaemic and valvular heart disease, arrhythmias, heart failure, chronic lung disease,
GERD, chronic liver and bowel disease, chronic kidney disease, BPH, inflammatory and degenerative
joint disease, osteoporosis, and persistent device/transplant status. It is a documented
approximation: acute codes in these chapters (e.g. `I21` acute MI) are deliberately absent.
"""
from __future__ import annotations

import re
import warnings
from functools import lru_cache
from typing import Iterable

from bertxml_lib.data.icd9 import normalize_icd9

# A letter, two more characters (digits; letters too in new categories such as M1A and QA0), up to 4 more.
_CODE_RE = re.compile(r"^[A-Z][0-9A-Z]{2}([0-9A-Z]{1,4})?$")


def _expand(spec: str) -> tuple[str, ...]:
    """'I10-I15' -> ('I10', ..., 'I15'); 'G47.33' -> ('G4733',). Prefixes are kept without the dot."""
    if "-" not in spec:
        return (spec.replace(".", ""),)
    lo, hi = spec.split("-")
    letter = lo[0]
    return tuple(f"{letter}{n:02d}" for n in range(int(lo[1:3]), int(hi[1:3]) + 1))


# (range or prefix, condition) — the condition names say what each entry is for.
_CHRONIC_SPECS: tuple[tuple[str, str], ...] = (
    ("B20", "HIV disease"), ("C00-C96", "malignant neoplasms"), ("D00-D09", "in situ neoplasms"),
    ("D57", "sickle-cell disorders"), ("D61", "aplastic anaemias"),
    ("E00-E07", "thyroid disorders (E03 hypothyroidism)"), ("E08-E13", "diabetes mellitus"),
    ("E20-E35", "other endocrine disorders"), ("E55", "vitamin D deficiency"), ("E66", "obesity"),
    ("E78", "lipid disorders"), ("E83.0", "copper metabolism disorders"), ("E84", "cystic fibrosis"),
    ("F01-F03", "dementia"), ("F10-F19", "substance-use disorders (F17 nicotine dependence)"),
    ("F20-F29", "schizophrenia and psychoses"), ("F30-F39", "mood disorders (F32/F33 depression)"),
    ("F40-F42", "anxiety and obsessive-compulsive disorders (F41 anxiety)"), ("F43.1", "PTSD"),
    ("F84", "pervasive developmental disorders"), ("F90", "ADHD"),
    ("G10-G13", "systemic atrophies"), ("G20-G26", "extrapyramidal and movement disorders"),
    ("G30-G32", "degenerative nervous-system disease"), ("G35-G37", "demyelinating disease"),
    ("G40", "epilepsy"), ("G43", "migraine"), ("G44.02", "chronic cluster headache"),
    ("G44.22", "chronic tension-type headache"), ("G44.32", "chronic post-traumatic headache"),
    ("G47.33", "obstructive sleep apnoea"), ("G62", "polyneuropathy"), ("G89.2", "chronic pain"),
    ("G89.4", "chronic pain syndrome"), ("H40", "glaucoma"), ("H90", "hearing loss"),
    ("I05-I09", "chronic rheumatic heart disease"), ("I10-I15", "hypertensive disease"),
    ("I20", "angina"), ("I25", "chronic ischaemic heart disease"), ("I27", "pulmonary hypertension"),
    ("I34-I37", "non-rheumatic valve disorders"), ("I42", "cardiomyopathy"),
    ("I48", "atrial fibrillation and flutter"), ("I50", "heart failure"), ("I65", "carotid stenosis"),
    ("I70", "atherosclerosis"), ("I71", "aortic aneurysm"), ("I73.9", "peripheral vascular disease"),
    ("J41-J45", "chronic bronchitis, emphysema, COPD (J44), asthma (J45)"), ("J47", "bronchiectasis"),
    ("J84", "interstitial lung disease"), ("K21", "GERD"), ("K50-K51", "inflammatory bowel disease"),
    ("K57", "diverticular disease"), ("K58", "irritable bowel syndrome"),
    ("K70-K76", "chronic liver disease"), ("L40", "psoriasis"), ("M05-M06", "rheumatoid arthritis"),
    ("M08", "juvenile arthritis"), ("M10", "gout"), ("M1A", "chronic gout"),
    ("M15-M19", "osteoarthritis (M17 knee)"), ("M32", "systemic lupus"), ("M45", "ankylosing spondylitis"),
    ("M47", "spondylosis"), ("M48.0", "spinal stenosis"), ("M80-M81", "osteoporosis"),
    ("N18", "chronic kidney disease"), ("N40", "benign prostatic hyperplasia"), ("Z21", "HIV status"),
    ("Z94", "transplant status"), ("Z95", "cardiac implant status (Z95.0 pacemaker)"),
    ("Z99.2", "dialysis dependence"),
)

#: Code prefixes (no dot) treated as chronic: an approximation of AHRQ's CCI, see module docstring.
CHRONIC_PREFIXES: tuple[str, ...] = tuple(p for spec, _ in _CHRONIC_SPECS for p in _expand(spec))


@lru_cache(maxsize=65536)
def normalize_code(code: str) -> str:
    """Strip, uppercase and dot an ICD-10-CM code: 'i2510' -> 'I25.10', ' I10 ' -> 'I10'.

    Works for codes the package does not know (the dot goes after the third character).
    """
    if not isinstance(code, str):
        raise ValueError(f"ICD code must be a string, got {type(code).__name__}: {code!r}")
    bare = code.strip().upper().replace(".", "")
    if not _CODE_RE.match(bare):
        raise ValueError(f"not an ICD-10-CM code: {code!r} (expected a letter and 2-6 more letters or digits)")
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


@lru_cache(maxsize=65536)
def is_chronic(code: str) -> bool:
    """Whether `code` falls under `CHRONIC_PREFIXES` (the approximate AHRQ chronic condition list)."""
    return normalize_code(code).replace(".", "").startswith(CHRONIC_PREFIXES)


def _package():
    # The package parses its bundled XML with deprecated importlib.resources calls; keep notebooks quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm
    return simple_icd_10_cm


@lru_cache(maxsize=None)
def describe(code: str) -> str:
    """Official ICD-10-CM description; the code itself when the package does not know it."""
    dotted = normalize_code(code)
    cm = _package()
    return cm.get_description(dotted) if cm.is_valid_item(dotted) else dotted


def is_known(code: str) -> bool:
    """Whether the package knows `code` (a chapter, block, category or code)."""
    return _package().is_valid_item(normalize_code(code))


@lru_cache(maxsize=None)
def code_parent(code: str) -> str:
    """Parent in the ICD-10-CM tree ('I25.10' -> 'I25.1'; a category's parent is its block, 'I10' ->
    'I10-I1A'). Unknown codes drop their last character ('X99.123' -> 'X99.12'); a bare unknown
    category is its own parent."""
    dotted = normalize_code(code)
    cm = _package()
    if cm.is_valid_item(dotted):
        return cm.get_parent(dotted) or dotted
    bare = dotted.replace(".", "")
    return normalize_code(bare[:-1]) if len(bare) > 3 else dotted


def _normalizer(icd_version: int):
    if icd_version == 10:
        return normalize_code
    if icd_version == 9:
        return normalize_icd9
    raise ValueError(f"icd_version must be 9 or 10, got {icd_version!r}")


def category(code: str, icd_version: int = 10) -> str:
    """The 3-character category of a code, undotted ('I25.10' -> 'I25', ICD-9 '401.9' -> '401',
    'V58.61' -> 'V58'); ICD-9-CM external-cause (E) codes have 4-character categories ('E849.0' -> 'E849')."""
    bare = _normalizer(icd_version)(code).replace(".", "")
    return bare[:4] if icd_version == 9 and bare.startswith("E") else bare[:3]


def related_codes(code: str, candidates: Iterable[str], icd_version: int = 10) -> list[str]:
    """Candidates in the same category as `code` (`category`; itself excluded), closest first:
    ordered by the length of the shared prefix (siblings under one parent first), then by code.
    `icd_version` 9 or 10 says how the codes are normalised and grouped.

    Used for the paper's "closely related classes" analysis (G44.029 vs G44.329).
    """
    norm = _normalizer(icd_version)
    target = norm(code).replace(".", "")
    group = category(code, icd_version)
    out = []
    for cand in dict.fromkeys(norm(c) for c in candidates):
        bare = cand.replace(".", "")
        if bare != target and bare.startswith(group) and category(cand, icd_version) == group:
            shared = next((i for i, (a, b) in enumerate(zip(bare, target)) if a != b), min(len(bare), len(target)))
            out.append((-shared, cand))
    return [c for _, c in sorted(out)]


@lru_cache(maxsize=1)
def leaf_codes() -> tuple[str, ...]:
    """Every billable (leaf) ICD-10-CM code in the package, dotted, in the package's order."""
    cm = _package()
    return tuple(c for c in cm.get_all_codes(True) if "-" not in c and cm.is_leaf(c))
