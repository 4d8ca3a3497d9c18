"""How a CSV export is parsed, wherever it lives (local disk or SFTP).

HR exports are messy (Excel BOMs, cp1252 accents, semicolons, quoted addresses with
newlines) yet a million rows must parse in a couple of seconds, so the bulk work is
pandas' C parser. The one thing pandas cannot tell is the physical line where each
record starts, which users need to find a rejected row. Most files have no record
spanning several lines, and then record n is simply the n-th non-blank line after the
header: that is computed with numpy. Only files where a quoted field may hold a
newline (an odd number of quote characters on some line) or where pandas disagrees
with that count take the slower, exact path through the `csv` module.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sync.core.sources.base import LINE_COLUMN, META_COLUMNS, with_meta
from sync.errors import SourceError

QUOTE = '"'
_SEP_LINE = re.compile(r'(?:sep=([^\r\n"])|"sep=(.)")[ \t]*(?=\r\n|\n|\r)', re.IGNORECASE)
"""A first line `sep=;` (or `"sep=;"`), up to but not including its line break."""
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_RECORDS = 200
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_EMPTY_NAME = "\x00empty{}"


@dataclass(frozen=True)
class ParsedFile:
    """One parsed file: `frame` already carries `_file` and `_line`."""

    display: str
    frame: pd.DataFrame
    columns: list[str]
    encoding: str
    delimiter: str


def normalize_delimiter(value: str) -> str | None:
    """None for auto; `tab`/`\\t` and friends as spelled in YAML configs."""
    if value.lower() == "auto":
        return None
    value = _DELIMITER_NAMES.get(value.lower(), value)
    if len(value) != 1 or value in (QUOTE, "\n", "\r"):
        raise SourceError(f"delimiter {value!r} is not a single usable character")
    return value


class CsvParser:
    """Bytes + a display name -> the contract's DataFrame.

    `encoding="auto"` tries UTF-8 (BOM stripped), then cp1252, then Latin-1 (which
    accepts any byte), because Windows HR tools export cp1252 without saying so.
    """

    def __init__(self, *, source: str, encoding: str = "auto", delimiter: str = "auto") -> None:
        self.source = source
        self.encoding = encoding
        self.delimiter = normalize_delimiter(delimiter)

    def parse_path(self, path: Path, display: str | None = None) -> ParsedFile:
        shown = display or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SourceError(f"source {self.source}: cannot read {shown}: {reason}") from None
        return self.parse_bytes(data, shown)

    def parse_bytes(self, data: bytes, display: str) -> ParsedFile:
        text, encoding = self._decode(data, display)
        if "\x00" in text:
            raise SourceError(
                f"source {self.source}: {display} contains NUL bytes "
                f"(is it a binary file or a different encoding than {encoding}?)"
            )
        declared, text, data = self._sep_directive(text, data)
        # Header and delimiter come from the head of the file: wrapping a 100 MB
        # string in StringIO alone costs half a second.
        head = _normalize(text[:_SAMPLE_CHARS])
        if len(text) > _SAMPLE_CHARS and "\n" in head:
            head = head[: head.rindex("\n") + 1]
        delimiter = self.delimiter or declared or sniff_delimiter(head)
        header, header_end = _first_record(head, delimiter)
        if header is not None and header_end >= head.count("\n") and len(head) < len(text):
            header, header_end = _first_record(_normalize(text), delimiter)
        if header is None:
            raise SourceError(f"source {self.source}: {display} is empty (no header line)")
        names = self._names(header, display)
        if encoding == "utf-8" and not data.startswith(_UTF8_BOM):
            # Same bytes pandas needs once line ends are "\n"; bytes.replace is cheap.
            buffer = data.replace(b"\r\n", b"\n") if b"\r" in data else data
            if b"\r" in buffer:
                buffer = buffer.replace(b"\r", b"\n")
        else:
            buffer = _normalize(text).encode("utf-8")
        fast = _fast_parse(buffer, names, delimiter, header_end)
        if fast is None:
            frame, widths = self._exact_parse(_normalize(text), names, delimiter, display)
        else:
            frame, widths = with_meta(fast[0], display, fast[1]), fast[2]
        short = _short_records(frame, widths, names)
        frame = _drop_blank_rows(frame, names)
        self._check_not_truncated(text, frame, names, delimiter, display)
        self._check_no_short_records(short, names, display)
        frame = self._drop_empty_named(frame, names, display)
        columns = [n for n in names if not n.startswith(_EMPTY_NAME[:6])]
        return ParsedFile(display, frame, columns, encoding, delimiter)

    def _sep_directive(self, text: str, data: bytes) -> tuple[str | None, str, bytes]:
        """Excel's `sep=;` first line (HR systems copy it) declares the delimiter.

        The line is a directive, not data: its text is dropped but its line break kept,
        so every record keeps its physical line number. It is honoured when the source
        leaves the delimiter to detection or names the same one; otherwise the line is
        left alone (then it is the header, as the config says).
        """
        match = _SEP_LINE.match(text)
        if match is None:
            return None, text, data
        declared = match.group(1) or match.group(2)
        if self.delimiter not in (None, declared):
            return None, text, data
        directive = match.group(0)
        if data.startswith(directive.encode("utf-8")):
            data = data[len(directive.encode("utf-8")) :]
        return declared, text[len(directive) :], data

    def _check_not_truncated(
        self, text: str, frame: pd.DataFrame, names: list[str], delimiter: str, display: str
    ) -> None:
        """A transfer cut mid-record must not pass as a record with empty fields.

        Every short record fails the file (`_check_no_short_records`); a last record
        that is short AND lacks a final line break is the signature of a cut file, and
        is said so: its empty fields would otherwise read as "no longer active" and
        archive a real person.
        """
        if frame.empty or text.endswith(("\n", "\r")):
            return
        last = text[max(text.rfind("\n"), text.rfind("\r")) + 1 :]
        if QUOTE in last:
            return  # a quoted last record may span lines; the quote check covers it
        record = next(csv.reader([last], delimiter=delimiter), [])
        if 0 < len(record) < len(names):
            line = int(frame[LINE_COLUMN].iloc[-1])
            raise SourceError(
                f"source {self.source}: {display} line {line}: the last record has "
                f"{len(record)} of {len(names)} fields and no line break after it; "
                "the file looks truncated (was the transfer complete?)"
            )

    def _check_no_short_records(
        self, short: list[tuple[int, int]], names: list[str], display: str
    ) -> None:
        """A record with fewer fields than the header fails the file, as one with more
        does.

        Its missing fields would otherwise read as empty values: an empty `Status` that
        a filter reads makes a person synced yesterday look gone (a leaver in waiting),
        with nothing naming the line. A row of only delimiters is no record and is
        dropped, whatever its width.
        """
        if not short:
            return
        line, width = short[0]
        missing = ", ".join(repr(n) for n in names[width:][:3])
        if len(names) - width > 3:
            missing += f" and {len(names) - width - 3} more"
        more = ""
        if len(short) > 1:
            more = f"; {len(short) - 1} more short record(s), first on line {short[1][0]}"
        raise SourceError(
            f"source {self.source}: {display} line {line}: {width} fields but the header "
            f"has {len(names)} (missing {missing}){more}",
            hint="every record needs every column, empty ones as empty fields; "
            "was the export cut or edited by hand?",
        )

    def _decode(self, data: bytes, display: str) -> tuple[str, str]:
        if self.encoding.lower() != "auto":
            encoding = self.encoding
            if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
                encoding = "utf-8-sig"
            try:
                return data.decode(encoding), self.encoding
            except LookupError:
                raise SourceError(
                    f"source {self.source}: unknown encoding {self.encoding!r}"
                ) from None
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                raise SourceError(
                    f"source {self.source}: {display} is not valid {self.encoding}: "
                    f"byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
                    hint="fix the file or set the source's encoding",
                ) from None
        if data.startswith(_UTF16_BOMS):
            try:
                return data.decode("utf-16"), "utf-16"
            except UnicodeDecodeError:
                pass
        for encoding in ("utf-8-sig", "cp1252", "latin-1"):
            try:
                return data.decode(encoding), encoding.removesuffix("-sig")
            except UnicodeDecodeError:
                continue
        raise AssertionError("latin-1 decodes every byte")  # pragma: no cover

    def _names(self, header: list[str], display: str) -> list[str]:
        names: list[str] = []
        seen: dict[str, int] = {}
        duplicates: list[str] = []
        for index, raw in enumerate(header, start=1):
            name = raw.strip()
            if not name:
                name = _EMPTY_NAME.format(index)
            elif name in META_COLUMNS:
                raise SourceError(
                    f"source {self.source}: {display}: column {name!r} is reserved "
                    "for the engine; rename it in the export"
                )
            if name in seen:
                duplicates.append(name)
            seen[name] = index
            names.append(name)
        if duplicates:
            listed = ", ".join(sorted(set(duplicates)))
            raise SourceError(f"source {self.source}: {display}: duplicate header names: {listed}")
        return names

    def _drop_empty_named(
        self, frame: pd.DataFrame, names: list[str], display: str
    ) -> pd.DataFrame:
        """A trailing delimiter makes an unnamed column; harmless only while it stays empty."""
        unnamed = [n for n in names if n.startswith(_EMPTY_NAME[:6])]
        for name in unnamed:
            filled = frame.index[frame[name].to_numpy() != ""]
            if len(filled):
                position = int(name[6:])
                line = int(frame.loc[filled[0], "_line"])
                raise SourceError(
                    f"source {self.source}: {display}: column {position} has no header name "
                    f"but holds values (first on line {line})"
                )
        return frame.drop(columns=unnamed) if unnamed else frame

    def _exact_parse(
        self, text: str, names: list[str], delimiter: str, display: str
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Record by record, tracking each record's first physical line and its width."""
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
        width = len(names)
        rows: list[list[str]] = []
        lines: list[int] = []
        widths: list[int] = []
        header_seen = False
        previous = 0
        physical = text.split("\n")
        try:
            for record in reader:
                start = previous + 1
                previous = reader.line_num
                if not record or _blank_line(physical, start, previous):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                if len(record) > width and any(record[width:]):
                    raise SourceError(
                        f"source {self.source}: {display} line {start}: "
                        f"{len(record)} fields but the header has {width}"
                    )
                widths.append(len(record))
                if len(record) > width:
                    del record[width:]  # empty trailing fields, as pandas tolerates
                elif len(record) < width:
                    record.extend([""] * (width - len(record)))  # reported as short
                rows.append(record)
                lines.append(start)
        except csv.Error as exc:
            raise SourceError(
                f"source {self.source}: {display} line {reader.line_num}: {exc}"
            ) from None
        if text.count(QUOTE) % 2 and rows and _ends_inside_quotes(text, delimiter):
            raise SourceError(
                f"source {self.source}: {display} line {lines[-1]}: a quoted field is never closed"
            )
        frame = pd.DataFrame(rows, columns=pd.Index(names, dtype=object), dtype=object)
        if not rows:
            frame = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        return (
            with_meta(frame, display, np.asarray(lines, dtype=np.int64)),
            np.asarray(widths, dtype=np.int64),
        )


def _blank_line(physical: list[str], start: int, end: int) -> bool:
    """What pandas skips: a single physical line of only spaces and tabs."""
    return start == end and not physical[start - 1].strip(" \t")


def _normalize(text: str) -> str:
    """One line end: "\r\n" and a lone "\r" (old Mac exports) count as one physical line."""
    if "\r" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Whether the text ends while a quoted field is still open (csv accepts that silently)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for _ in reader:
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _first_record(text: str, delimiter: str) -> tuple[list[str] | None, int]:
    """The first non-blank record and the physical line where it ends."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    physical = text.split("\n")
    previous = 0
    try:
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if record and not _blank_line(physical, start, previous):
                return record, reader.line_num
    except csv.Error:
        return None, 0
    return None, 0


def sniff_delimiter(text: str) -> str:
    """The candidate that splits the header into most fields *and* keeps rows consistent.

    `csv.Sniffer` guesses from character frequencies and is fooled by delimiters in
    quoted fields; parsing a sample with each candidate respects quoting.
    """
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    best: tuple[float, int, int] | None = None
    chosen = ","
    for rank, candidate in enumerate(DELIMITERS):
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=candidate, strict=False)
        widths: list[int] = []
        try:
            for record in reader:
                if record and not (len(record) == 1 and not record[0].strip()):
                    widths.append(len(record))
                if len(widths) > _SAMPLE_RECORDS:
                    break
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        body = widths[1:]
        consistent = sum(w == widths[0] for w in body) / len(body) if body else 1.0
        score = (consistent, widths[0], -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def _fast_parse(
    buffer: bytes, names: list[str], delimiter: str, header_end: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """pandas + numpy line numbers and record widths, or None when the exact path must
    decide.

    A line starts a record when the newline before it lies outside quotes, i.e. after
    an even number of quote characters. That parity rule is the csv state machine
    exactly as long as every quote opening a quoted section stands at a field start
    (or right after a closing quote: an escaped ""); a stray quote inside an unquoted
    field (`ab"c`) breaks it, so such files go the exact way.
    """
    raw = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    quotes = np.flatnonzero(raw == ord(QUOTE))
    outside = np.ones(len(newlines) + 1, dtype=bool)  # line i starts outside quotes
    if len(quotes):
        if len(quotes) % 2:
            return None  # a quoted field is never closed: the exact path reports it
        openers = quotes[0::2]
        previous = raw[np.maximum(openers - 1, 0)]
        at_field_start = (openers == 0) | (previous == ord(delimiter)) | (previous == 10)
        escaped = np.zeros(len(openers), dtype=bool)
        escaped[1:] = quotes[1:-1:2] == openers[1:] - 1
        if not (at_field_start | escaped).all():
            return None
        outside[1:] = (np.searchsorted(quotes, newlines) & 1) == 0
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(raw)]))
    nonblank = (ends > starts) & outside
    # pandas skips lines holding only spaces/tabs; only lines starting so can be such.
    if delimiter not in " \t":
        first = raw[np.minimum(starts, len(raw) - 1)]
        suspects = np.flatnonzero(nonblank & ((first == 32) | (first == 9)))
        for index in suspects:
            if not buffer[starts[index] : ends[index]].strip(b" \t"):
                nonblank[index] = False
    numbers = np.flatnonzero(nonblank) + 1
    numbers = numbers[numbers > header_end]
    widths = _record_widths(raw, quotes, delimiter, starts[numbers - 1])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(
                io.BytesIO(buffer),
                sep=delimiter,
                header=0,
                names=names,
                index_col=False,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                engine="c",
                quotechar=QUOTE,
                doublequote=True,
                skip_blank_lines=True,
                encoding="utf-8",
                # Chunked tokenising keeps the parser's buffers small: about a
                # second faster on a million rows, and with every column read as
                # text there is no per-chunk type inference to disagree.
                low_memory=True,
            )
    except (pd.errors.ParserError, ValueError):
        return None
    if caught or len(frame) != len(numbers):
        return None  # ragged rows or a blank-line rule pandas applies differently
    return frame, numbers, widths


def _record_widths(
    raw: np.ndarray, quotes: np.ndarray, delimiter: str, record_starts: np.ndarray
) -> np.ndarray:
    """Fields per record: delimiters outside quotes between one record's start and the
    next's, plus one. pandas pads a short record with "" and says nothing, so its width
    is counted here (the same parity rule as the line starts: a delimiter is outside
    quotes after an even number of quote characters)."""
    delimiters = np.flatnonzero(raw == ord(delimiter))
    if len(quotes):
        delimiters = delimiters[(np.searchsorted(quotes, delimiters) & 1) == 0]
    ends = np.append(record_starts[1:], len(raw))
    counts = np.searchsorted(delimiters, ends) - np.searchsorted(delimiters, record_starts)
    return counts.astype(np.int64) + 1


def _short_records(
    frame: pd.DataFrame, widths: np.ndarray, names: list[str]
) -> list[tuple[int, int]]:
    """(line, width) of each record with fewer fields than the header, rows of only
    delimiters aside (they carry no record and are dropped)."""
    candidates = np.flatnonzero(widths < len(names))
    if not len(candidates):
        return []
    empty = np.ones(len(candidates), dtype=bool)
    for name in names:
        empty &= frame[name].to_numpy()[candidates] == ""
    candidates = candidates[~empty]
    lines = frame[LINE_COLUMN].to_numpy()[candidates]
    return [(int(line), int(widths[i])) for line, i in zip(lines, candidates, strict=True)]


def _drop_blank_rows(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows of only delimiters (Excel's trailing ",,,,") carry no record.

    Checked column by column on the shrinking set of candidates, so a file whose first
    column is filled costs one comparison pass.
    """
    if frame.empty or not names:
        return frame
    candidates = np.arange(len(frame))
    for name in names:
        values = frame[name].to_numpy()[candidates]
        candidates = candidates[values == ""]
        if not len(candidates):
            return frame
    return frame.drop(index=frame.index[candidates]).reset_index(drop=True)


def file_mtime(path: str) -> float:
    return os.stat(path).st_mtime
