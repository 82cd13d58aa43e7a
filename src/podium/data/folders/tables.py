"""Reading the CSVs people download: any common delimiter, UTF-8 with or without a byte-order mark, UTF-16, or a
declared encoding; every cell a string. A file that cannot be read is a one-line error naming it and the option
that fixes it (``data.csv_encoding``, ``data.csv_sep``).
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.core.registry import Registry

# data.csv_sep: the delimiter by name (``auto``: sniffed from the first lines among these)
SEPARATORS: Registry[str] = Registry("CSV separator")
for _name, _char in {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}.items():
    SEPARATORS.register(_name)(_char)
# data.csv_encoding (``auto``: a byte-order mark's, else UTF-8): the encodings spreadsheet programs and older systems
# save CSVs in, each name -> Python codec
ENCODINGS: Registry[str] = Registry("CSV encoding")
for _name in ("utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "iso-8859-15", "cp1250", "cp1251", "shift_jis",
              "gbk", "big5", "euc-kr"):
    ENCODINGS.register(_name)(_name)
del _name, _char
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
SNIFF_LINES = 50


def decode_csv(data: bytes, path: Path, encoding: str = "auto") -> str:
    """The file's text: the declared encoding, or with ``auto`` a byte-order mark's, else UTF-8 (UTF-16 when the
    first line is full of NUL bytes); otherwise a one-line error naming the byte and the option that fixes it."""
    if encoding == "auto":
        encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "")
        if not encoding:
            head = data[:200]
            nul_odd, nul_even = head[1::2].count(0), head[0::2].count(0)
            encoding = ("utf-16-le" if nul_odd > len(head) // 4 else "utf-16-be" if nul_even > len(head) // 4
                        else "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PodiumError(
            f"{path} is not {encoding} text (byte {data[e.start:e.start + 1]!r} in line {line}); set "
            "data.csv_encoding to the encoding it was saved in, e.g. data.csv_encoding=cp1252 (Windows, Western) "
            "or latin-1, or save it as UTF-8."
        ) from None


def sniff_separator(text: str) -> str:
    """The delimiter of a CSV: of ``, ; TAB |``, the one its header line holds, or the one csv.Sniffer finds in the
    first lines among those the header holds; a comma when the header holds none (a one-column file)."""
    lines = text.lstrip("\ufeff").splitlines()
    header = lines[0] if lines else ""
    candidates = "".join(c for c in (SEPARATORS.get(n) for n in SEPARATORS) if c in header)
    if len(candidates) <= 1:
        return candidates or ","
    try:
        return csv.Sniffer().sniff("\n".join(lines[:SNIFF_LINES]), delimiters=candidates).delimiter
    except csv.Error:  # no delimiter is used consistently: the first candidate in the header
        return min(candidates, key=header.index)


def read_table(path: Path, encoding: str = "auto", sep: str = "auto") -> pd.DataFrame:
    """Read a CSV as strings (empty cells stay empty strings, names and headers stripped) or explain in one line why
    it cannot be read: missing, empty, undecodable, duplicated column names or ragged rows."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise PodiumError(f"{path} is a folder, not a CSV file; point the option at the file.") from None
    except OSError as e:
        raise PodiumError(f"Cannot read {path} ({e.strerror}).") from None
    if not data.strip():
        raise PodiumError(f"{path} is empty ({len(data)} bytes); it needs a header line and one row per image.")
    text = decode_csv(data, path, encoding)
    delimiter = SEPARATORS.get(sep) if sep != "auto" else sniff_separator(text)
    header = [c.strip() for c in next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter), [])]
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        where = "; ".join(f"{c!r} (columns {', '.join(str(i + 1) for i, h in enumerate(header) if h == c)})"
                          for c in dup)
        raise PodiumError(f"{path} has duplicated column names: {where}; rename them so each column has one name.")
    if "" in header and len(header) > 1:
        raise PodiumError(f"{path} has a column without a name (column {header.index('') + 1}); name it or delete it.")
    try:
        df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), sep=delimiter, dtype=str, keep_default_na=False,
                         skipinitialspace=True)
    except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a malformed file
        shown = next(n for n in SEPARATORS if SEPARATORS.get(n) == delimiter)
        raise PodiumError(f"Cannot read {path}: {str(e).strip().splitlines()[-1]} (read with data.csv_sep={shown}). "
                          f"Check that every row has the header's {len(header)} fields, or set data.csv_sep.") from None
    if df.empty:
        raise PodiumError(f"{path} has a header ({list_some(header)}) but no rows.")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def read_csv(path: Path, cfg: DataConfig) -> pd.DataFrame:
    """Read one of the competition's CSVs with the configured (or detected) delimiter and encoding, as strings."""
    return read_table(path, cfg.csv_encoding, cfg.csv_sep)
