"""Notebook 01 — reading an HL7 FHIR R4 export for `data.source=fhir` (`data.fhir`): Bulk Data NDJSON line by
line and Bundles entry by entry (ijson), each resource with where it was read, and the fields the source uses
(dates, references, codeable concepts, note text from base64 attachments and XHTML narratives), checked by
hand with a `DataError` naming file, line or entry, resource and field."""
from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import ijson
import pandas as pd

from bertxml_lib.data.validation import DataError

USED_TYPES = ("DocumentReference", "Composition", "Condition", "Encounter", "Patient")
HTML_TYPES = ("text/html", "application/xhtml+xml")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?)?)?"
                   r"(?:Z|[+-]\d{2}:\d{2})?$")
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"}


# ---------------------------------------------------------------------------------------------
# Reading: every resource of the export with where it was found (file, line or entry index)
# ---------------------------------------------------------------------------------------------

class Where:
    """Where a resource was read, for error messages: file, NDJSON line or Bundle entry index, resource id."""

    def __init__(self, path: Path, line: int | None = None, entry: int | None = None, rid: str = ""):
        self.path, self.line, self.entry, self.rid = path, line, entry, rid

    def error(self, problem: str, field: str = "") -> DataError:
        at = f"line {self.line}" if self.line is not None else f"entry {self.entry}" if self.entry is not None else ""
        parts = [str(self.path)] + [p for p in (at, f"resource {self.rid}" if self.rid else "",
                                                  f"field {field}" if field else "") if p]
        return DataError(f"{', '.join(parts)}: {problem}")


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def export_files(root: Path) -> list[Path]:
    """The NDJSON and Bundle files of an export folder (sorted, sub-folders included)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith((".ndjson", ".ndjson.gz", ".json", ".json.gz")))


def ndjson_resources(path: Path, skipped: Counter) -> Iterator[tuple[dict, Where]]:
    """One resource a line. A Bulk Data file holds one resource type: when its first resource is of a type
    this source does not use and the file is named after that type, the rest is counted, not parsed."""
    with _open(path) as fh:
        first, first_type = True, None
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            if first_type is not None:
                skipped[first_type] += 1
                continue
            where = Where(path, line=n)
            try:
                resource = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise where.error(f"not JSON ({exc}); expected one FHIR resource (a JSON object) per line") from None
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            if first and isinstance(rtype, str) and rtype and rtype not in USED_TYPES and path.name.startswith(rtype):
                first_type = rtype
                skipped[rtype] += 1
                continue
            first = False
            yield resource, where


def bundle_resources(path: Path) -> Iterator[tuple[dict, Where]]:
    """`entry[].resource` of a Bundle, one entry at a time (ijson), with the entry's fullUrl as `_fullUrl`."""
    index = -1  # the last entry read whole
    try:
        with _open(path) as fh:
            kind = next(ijson.items(fh, "resourceType"), None)
        if kind != "Bundle":
            raise Where(path).error(f"resourceType is {kind!r}; expected a FHIR Bundle (a .json file of data.dir "
                                     "holds one Bundle; Bulk Data files end in .ndjson)", "resourceType")
        with _open(path) as fh:
            for index, entry in enumerate(ijson.items(fh, "entry.item", use_float=True)):
                where = Where(path, entry=index)
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict):
                    raise where.error("expected an object with a 'resource'", "entry.resource")
                if entry.get("fullUrl"):
                    resource = {**resource, "_fullUrl": str(entry["fullUrl"])}
                yield resource, where
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        at = f"after entry {index} (entries counted from 0)" if index >= 0 else "before the first complete entry"
        raise DataError(f"{path}: not valid JSON {at} ({exc}); expected a FHIR Bundle (UTF-8 JSON)") from None


# ---------------------------------------------------------------------------------------------
# Fields: dates, references, codeable concepts, text
# ---------------------------------------------------------------------------------------------

def parse_date(value, where: Where, field: str) -> pd.Timestamp:
    """A FHIR date/dateTime/instant ('2150', '2150-03', '2150-03-04T10:20:00+01:00') as the local clock
    time it names (the offset dropped, as every other source keeps local times); missing -> NaT."""
    if value is None or value == "":
        return pd.NaT
    m = _DATE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise where.error(f"unparseable date {value!r}; expected a FHIR dateTime such as 2150-03-04 or "
                          "2150-03-04T10:20:00Z", field)
    y, mo, d, hh, mi, ss = m.groups()
    try:
        return pd.Timestamp(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise where.error(f"invalid date {value!r} ({exc})", field) from None


def reference(value, where: Where, field: str) -> str:
    """The `reference` string of a Reference ('' when absent)."""
    if value is None:
        return ""
    if not isinstance(value, dict) or not isinstance(value.get("reference", ""), str):
        raise where.error(f"expected a Reference object with a 'reference' string, got {value!r:.80}", field)
    return value.get("reference", "").strip()


def canonical(ref: str, alias: dict[str, str]) -> str:
    """'Type/id' for a relative or absolute reference; a Bundle's `urn:uuid:` fullUrl through `alias`."""
    if ref in alias:
        return alias[ref]
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and not ref.startswith("urn:") else ref


def concept_name(concept) -> str:
    """A CodeableConcept's first coding display, else its code, else its text."""
    if not isinstance(concept, dict):
        return ""
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict):
            return str(coding.get("display") or coding.get("code") or "").strip()
    return str(concept.get("text") or "").strip()


class _TextExtractor(HTMLParser):
    """XHTML/HTML -> plain text: block elements start new lines, script and style are dropped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an XHTML narrative, lines trimmed and blank runs collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def attachment_text(content, where: Where, counts: Counter) -> str:
    """The text of a DocumentReference: the first text/plain attachment with data, else the first HTML/XHTML
    one. Attachments with only a `url`, or of other types (PDF, images), are counted and skipped."""
    if not isinstance(content, list):
        raise where.error(f"expected a list of content items, got {type(content).__name__}", "content")
    found: dict[str, str] = {}
    for i, item in enumerate(content):
        att = item.get("attachment") if isinstance(item, dict) else None
        if not isinstance(att, dict):
            raise where.error("expected an object with an 'attachment'", f"content[{i}].attachment")
        ctype = str(att.get("contentType") or "text/plain").split(";")[0].strip().lower()
        if "data" not in att:
            counts["attachments_url_only" if att.get("url") else "attachments_empty"] += 1
            continue
        if ctype != "text/plain" and ctype not in HTML_TYPES:
            counts["attachments_other_type"] += 1
            continue
        try:
            raw = base64.b64decode(str(att["data"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise where.error(f"attachment data is not valid base64 ({exc})", f"content[{i}].attachment.data") from None
        charset = re.search(r"charset=([\w-]+)", str(att.get("contentType") or ""))
        try:
            text = raw.decode(charset.group(1) if charset else "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise where.error(f"attachment text cannot be decoded ({exc}); expected UTF-8 or the contentType's "
                              "charset", f"content[{i}].attachment.data") from None
        found.setdefault("plain" if ctype == "text/plain" else "html", text)
    if "plain" in found:
        return found["plain"]
    return html_to_text(found["html"]) if "html" in found else ""


def composition_text(resource: dict) -> str:
    """Title, then each section's title and narrative (nested sections in order); the resource narrative when
    there are no sections."""
    lines = [str(resource.get("title") or "").strip()]

    def walk(sections):
        for s in sections or []:
            if isinstance(s, dict):
                lines.append(str(s.get("title") or "").strip())
                lines.append(html_to_text(str((s.get("text") or {}).get("div") or "")))
                walk(s.get("section"))

    walk(resource.get("section"))
    if not resource.get("section"):
        lines.append(html_to_text(str((resource.get("text") or {}).get("div") or "")))
    return "\n".join(line for line in lines if line)
