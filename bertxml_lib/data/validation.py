"""Notebook 01 — checked reading of user tables: every bad input becomes a `DataError` naming the
file, the row or column, and what was expected, before anything is written.

Rows are counted as *data rows*: 1 is the first row after the header (a CSV field spanning several lines
is still one row). Byte offsets count from the start of the (decompressed) text.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

# How many offending values a message lists before "... and N more".
_SHOW = 5


class DataError(ValueError):
    """Bad input data (file, row or column, and what was expected); run_all maps it to exit 2."""


class DataWarning(UserWarning):
    """A recoverable problem in the input (e.g. codes for unknown notes), dropped with a count."""


def listing(values: Iterable, show: int = _SHOW) -> str:
    """'a, b, c' or 'a, b, c, ... and 7 more': bounded, so a million bad rows make one short message."""
    values = list(values)
    head = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:show])
    return head + (f", ... and {len(values) - show} more" if len(values) > show else "")


def require_file(path: str | Path, what: str) -> Path:
    """`path` as a Path; a DataError when it is missing or not a file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found (expected {what})")
    if not path.is_file():
        raise DataError(f"{path}: not a file (expected {what})")
    return path


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def first_invalid_utf8(path: str | Path, chunk_bytes: int = 1 << 20) -> tuple[int, int, bytes] | None:
    """(line, byte offset, offending bytes) of the first byte sequence that is not UTF-8, or None.

    Streams the file (decompressing .gz), so it costs one pass and bounded memory."""
    path = Path(path)
    offset, line, carry = 0, 1, b""  # offset/line of the start of `carry`
    with _open_binary(path) as fh:
        while True:
            chunk = fh.read(chunk_bytes)
            buf, last = carry + chunk, not chunk
            try:
                buf.decode("utf-8")
                good = len(buf)
            except UnicodeDecodeError as exc:
                # A multi-byte character cut by the chunk boundary is not an error: carry it over.
                if not last and exc.reason == "unexpected end of data":
                    good = exc.start
                else:
                    return line + buf[: exc.start].count(b"\n"), offset + exc.start, buf[exc.start : exc.end]
            line += buf[:good].count(b"\n")
            offset += good
            carry = buf[good:]
            if last:
                return None


def _utf8_error(path: Path) -> DataError:
    found = first_invalid_utf8(path)
    where = (f"line {found[0]}, byte offset {found[1]} (bytes {found[2].hex(' ')})" if found
             else "somewhere in the file")
    return DataError(f"{path}: not valid UTF-8 text at {where}; expected UTF-8 encoded text "
                     "(re-save the file as UTF-8)")


def read_text_file(path: str | Path) -> str:
    """A whole UTF-8 text file (one document), with a DataError naming the byte offset otherwise."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _utf8_error(path) from None


def require_columns(columns: Sequence[str], required: Sequence[str], path: Path, what: str = "") -> None:
    """A DataError naming each missing column and the columns the file does have."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {listing(missing)}{' for ' + what if what else ''}; "
                        f"expected columns {list(required)}, found {list(columns)}")


def read_csv_table(path: str | Path, required: Sequence[str], optional: Sequence[str] = (), *, what: str,
                   sep: str = ",", names: Sequence[str] | None = None) -> pd.DataFrame:
    """Every value as a string ('' for empty fields; ids such as '0012' keep their zeros).

    Reads only the `required` and present `optional` columns. With `names`, the file has no header and
    its columns are named in order. Bad input raises DataError: missing file or column, no rows, bytes that
    are not UTF-8, broken quoting."""
    path = require_file(path, what)
    kwargs = dict(sep=sep, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    try:
        if names is None:
            header = pd.read_csv(path, nrows=0, **kwargs).columns.tolist()
            require_columns(header, required, path, what)
            usecols = [c for c in header if c in set(required) | set(optional)]
            df = pd.read_csv(path, usecols=usecols, **kwargs)
        else:
            df = pd.read_csv(path, header=None, names=list(names), **kwargs)
    except UnicodeDecodeError:
        raise _utf8_error(path) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected {what}") from None
    except pd.errors.ParserError as exc:
        raise DataError(_describe_parser_error(path, str(exc), sep)) from None
    if df.empty:
        raise DataError(f"{path}: the table has a header but no data rows; expected {what}")
    return df


def _describe_parser_error(path: Path, message: str, sep: str) -> str:
    """pandas' tokenizer message, restated with data-row numbers and the expected quoting."""
    quote = re.search(r"EOF inside string starting at row (\d+)", message)
    if quote:
        # pandas counts the header as row 0, so its row number is the 1-based data row.
        return (f"{path}: unterminated quote: the quoted field opening in data row {quote.group(1)} never closes; "
                'expected RFC 4180 quoting (a field that starts with " ends with ", inner quotes doubled as "")')
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        n, line, saw = fields.groups()
        return (f"{path}: line {line} has {saw} fields, expected {n} (separator {sep!r}); "
                "quote fields that contain the separator")
    return f"{path}: malformed {'TSV' if sep == chr(9) else 'CSV'} ({message}); expected RFC 4180 CSV"


def read_parquet_table(path: str | Path, kinds: dict[str, str], required: Sequence[str], *, what: str) -> pd.DataFrame:
    """A Parquet table with its column types checked against `kinds` before the data is read.

    Kinds: 'id' accepts strings or integers (read back as strings), 'str' strings only (codes stay strings:
    an integer ICD-9 column would already have lost its leading zeros), 'date' timestamps, dates or ISO
    8601 strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = require_file(path, what)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc}); expected {what}") from None
    require_columns(schema.names, required, path, what)
    present = [c for c in kinds if c in schema.names]
    for col in present:
        typ = schema.field(col).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        is_str = pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)
        ok = {"id": is_str or pa.types.is_integer(typ), "str": is_str,
              "date": is_str or pa.types.is_timestamp(typ) or pa.types.is_date(typ)}[kinds[col]]
        if not ok:
            expected = {"id": "string or integer", "str": "string",
                        "date": "timestamp, date or ISO 8601 string"}[kinds[col]]
            raise DataError(f"{path}: column {col!r} has Parquet type {typ}; expected {expected}")
    df = pq.read_table(path, columns=present).to_pandas()
    if df.empty:
        raise DataError(f"{path}: the table has no rows; expected {what}")
    for col in present:
        if kinds[col] == "id":
            nulls = df[col].isna()
            if nulls.any():
                raise DataError(f"{path}: column {col!r} is empty in data row(s) "
                                f"{listing((nulls[nulls].index + 1).tolist())}; expected an id in every row")
            df[col] = df[col].astype(str)
        elif kinds[col] == "str":
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df


def read_table(path: str | Path, kinds: dict[str, str], required: Sequence[str], *, what: str) -> pd.DataFrame:
    """CSV (optionally .gz) or Parquet (.parquet/.pq), chosen by the file name."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return read_parquet_table(path, kinds, required, what=what)
    optional = [c for c in kinds if c not in required]
    return read_csv_table(path, required, optional, what=what)


def require_nonempty(df: pd.DataFrame, column: str, path: Path) -> None:
    """Every row has a value in `column` (ids, codes)."""
    empty = df[column].str.strip() == ""
    if empty.any():
        rows = (empty.to_numpy().nonzero()[0] + 1).tolist()
        raise DataError(f"{path}: column {column!r} is empty in data row(s) {listing(rows)}; expected a value in every row")


def require_unique(df: pd.DataFrame, column: str, path: Path) -> None:
    """A DataError naming the duplicated values of `column` (e.g. note_id)."""
    dup = df[column][df[column].duplicated(keep=False)]
    if len(dup):
        values = list(dict.fromkeys(dup.tolist()))
        raise DataError(f"{path}: duplicate {column} value(s) {listing(values)} ({len(values)} distinct value(s) "
                        f"repeated); expected each {column} exactly once")


def parse_dates(values: pd.Series, path: Path, column: str) -> pd.Series:
    """ISO 8601 dates ('2151-08-04', '2151-08-04 12:00:00') as datetime64[ns]; empty -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    text = values.astype(str).str.strip()
    blank = (text == "") | values.isna()
    parsed = pd.to_datetime(text.where(~blank, None), format="ISO8601", errors="coerce")
    bad = parsed.isna() & ~blank
    if bad.any():
        rows = (bad.to_numpy().nonzero()[0] + 1).tolist()
        raise DataError(f"{path}: column {column!r} has unparseable date(s) {listing(text[bad].tolist())} in data "
                        f"row(s) {listing(rows)}; expected ISO 8601 (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS) or empty")
    return parsed.astype("datetime64[ns]")


def require_values(values: pd.Series, allowed: Sequence[str], path: Path, column: str) -> pd.Series:
    """Lower-cased, stripped values checked against `allowed` (e.g. the split names)."""
    clean = values.astype(str).str.strip().str.lower()
    bad = ~clean.isin(allowed)
    if bad.any():
        rows = (bad.to_numpy().nonzero()[0] + 1).tolist()
        raise DataError(f"{path}: column {column!r} has value(s) {listing(list(dict.fromkeys(values[bad].tolist())))} "
                        f"in data row(s) {listing(rows)}; expected one of {list(allowed)}")
    return clean
