"""CSV parsing: encodings, delimiters, quoting, physical line numbers, bad files."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.config.sources import CsvSourceConfig
from sync.core.sources import open_source
from sync.core.sources.csv import CsvParser, _fast_parse, _short_records, sniff_delimiter
from sync.errors import SourceError

DATA = Path(__file__).resolve().parent.parent / "data" / "sources"


def parse(data: bytes, **options: str) -> tuple[list[dict[str, object]], list[str]]:
    parsed = CsvParser(source="hr", **options).parse_bytes(data, "in/hr.csv")
    return parsed.frame.to_dict("records"), parsed.columns


def rows(data: bytes, **options: str) -> list[list[object]]:
    records, columns = parse(data, **options)
    return [[r[c] for c in columns] + [r["_line"]] for r in records]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    text = delimiter.join(["ref", "name", "dept"]) + "\n" + delimiter.join(["1", "Ann", "HR"])
    assert rows(text.encode()) == [["1", "Ann", "HR", 2]]


def test_sniffing_respects_quoted_delimiters() -> None:
    text = 'ref;name;note\n1;"Jansen, Jan";"a, b, c"\n2;Piet;"x,y"\n'
    assert sniff_delimiter(text) == ";"
    assert rows(text.encode())[0] == ["1", "Jansen, Jan", "a, b, c", 2]


def test_configured_delimiter_wins() -> None:
    assert rows(b"a;b,c\n1;2,3\n", delimiter=",") == [["1;2", "3", 2]]
    assert rows(b"a b\tc\n1\t2\n", delimiter="tab") == [["1", "2", 2]]


@pytest.mark.parametrize(
    "data",
    [
        b"sep=;\nref;name,full;dept\n1;Ann, A;HR\n2;Bob;IT\n",
        b"sep=;\r\nref;name,full;dept\r\n1;Ann, A;HR\r\n2;Bob;IT\r\n",
        b'"sep=;"\nref;name,full;dept\n1;Ann, A;HR\n2;Bob;IT\n',
        "\ufeffsep=;\nref;name,full;dept\n1;Ann, A;HR\n2;Bob;IT\n".encode(),
        "sep=;\nref;name,full;dept\n1;Ann, A;HR\n2;Bob;IT\n".encode("cp1252"),
    ],
    ids=["lf", "crlf", "quoted", "bom", "cp1252"],
)
def test_an_excel_sep_line_declares_the_delimiter_and_is_not_data(data: bytes) -> None:
    """Excel writes `sep=;` above the header; the commas in the data would otherwise
    win the sniffing. Line numbers stay physical: the first record is on line 3."""
    records, columns = parse(data)
    assert columns == ["ref", "name,full", "dept"]
    assert [[r["ref"], r["name,full"], r["_line"]] for r in records] == [
        ["1", "Ann, A", 3],
        ["2", "Bob", 4],
    ]
    assert rows(data, delimiter=";") == [["1", "Ann, A", "HR", 3], ["2", "Bob", "IT", 4]]


def test_a_sep_line_naming_another_delimiter_than_configured_is_left_alone() -> None:
    """The config's delimiter wins; the line is then the header, and the file fails
    as any file whose rows do not fit its header (never a silent guess)."""
    with pytest.raises(SourceError, match="line 2: 2 fields but the header has 1"):
        parse(b"sep=;\nref,name\n1,Ann\n", delimiter=",")


def test_utf8_bom_stripped_and_headers_trimmed() -> None:
    records, columns = parse((DATA / "hr_bom.csv").read_bytes())
    assert columns == ["ref", "email", "name"]
    assert records[0]["ref"] == "001"
    assert records[0]["name"] == "Jansen, Jan"


def test_cp1252_accents_detected() -> None:
    parsed = CsvParser(source="hr").parse_path(DATA / "hr_cp1252.csv")
    assert parsed.encoding == "cp1252"
    assert parsed.delimiter == ";"
    assert parsed.frame[["Voornaam", "Achternaam", "Afdeling"]].to_numpy().tolist() == [
        ["René", "Müller", "Straßenbau"],
        ["Noël", "Brügge", "Café"],
    ]
    assert parsed.frame["Personeelsnummer"].tolist() == ["00123", "00456"]


def test_latin1_fallback_for_bytes_cp1252_lacks() -> None:
    data = "ref,name\n1,Zoë\x81\n".encode("latin-1")
    parsed = CsvParser(source="hr").parse_bytes(data, "x.csv")
    assert parsed.encoding == "latin-1"
    assert parsed.frame["name"].tolist() == ["Zoë\x81"]


def test_configured_encoding_undecodable_names_offset_and_line() -> None:
    data = "ref,name\n1,Ann\n2,Zoë\n".encode("cp1252")
    with pytest.raises(SourceError) as info:
        parse(data, encoding="utf-8")
    message = str(info.value)
    assert "in/hr.csv is not valid utf-8" in message
    assert "byte 0xeb at offset 19" in message
    assert "line 3" in message


def test_configured_encoding_used() -> None:
    data = "ref,name\n1,Jürgen\n".encode("latin-1")
    assert rows(data, encoding="latin-1") == [["1", "Jürgen", 2]]


def test_utf16_with_bom() -> None:
    data = "ref\tname\n1\tÅsa\n".encode("utf-16")
    assert rows(data) == [["1", "Åsa", 2]]


def test_values_stay_strings_and_leading_zeros_survive() -> None:
    records, _ = parse(b"ref,cost,flag,empty\n00123,1.50,NA,\n0042,1e3,null,\n")
    assert records[0] == {
        "ref": "00123",
        "cost": "1.50",
        "flag": "NA",
        "empty": "",
        "_file": "in/hr.csv",
        "_line": 2,
    }
    assert records[1]["cost"] == "1e3"
    assert records[1]["flag"] == "null"


def test_frame_dtypes_follow_the_contract() -> None:
    parsed = CsvParser(source="hr").parse_bytes(b"a,b\n1,\n", "x.csv")
    assert [str(t) for t in parsed.frame.dtypes] == ["object", "object", "object", "int64"]
    assert list(parsed.frame.columns) == ["a", "b", "_file", "_line"]


def test_blank_lines_skipped_and_counted() -> None:
    data = b"\nref,name\n\n1,Ann\n   \n\n2,Bob\n,\n3,Cy\n\n"
    assert rows(data) == [["1", "Ann", 4], ["2", "Bob", 7], ["3", "Cy", 9]]


def test_quoted_newlines_keep_physical_start_lines() -> None:
    data = (
        b"ref,address,name\n"
        b'1,"Main St 1\n1234 AB Town",Ann\n'
        b'2,"a ""quoted"" word",Bob\n'
        b'3,"x\n\ny\n",Cy\n'
        b"\n"
        b"4,plain,Dee\n"
    )
    assert rows(data) == [
        ["1", "Main St 1\n1234 AB Town", "Ann", 2],
        ["2", 'a "quoted" word', "Bob", 4],
        ["3", "x\n\ny\n", "Cy", 5],
        ["4", "plain", "Dee", 10],
    ]


def test_mixed_line_endings() -> None:
    data = b'ref,name\r\n1,Ann\n2,"B\r\nob"\r\n3,Cy\r4,Dee\r\n'
    assert rows(data) == [
        ["1", "Ann", 2],
        ["2", "B\nob", 3],
        ["3", "Cy", 5],
        ["4", "Dee", 6],
    ]


@pytest.mark.parametrize(
    ("data", "line", "count"),
    [
        (b"a,b,c\n1\n2,3\n", 2, 1),  # the fast path (pandas pads short rows silently)
        (b'a,b,c\n1,2,3\n"x\ny",2\n', 3, 2),  # the exact path (a quoted newline)
        (b'a,b,c\n"1,2",3\n', 2, 2),  # a delimiter inside quotes is no field boundary
        (b"a;b;c;d\n1;2;3;4\n\n5;6\n", 4, 2),  # the line, not the record number
    ],
)
def test_short_row_fails_the_file_naming_its_line(data: bytes, line: int, count: int) -> None:
    # Padding would turn the missing fields into empty values: an empty Status that a
    # filter reads makes a synced person look gone, and no rejection names the line.
    with pytest.raises(
        SourceError, match=rf"in/hr.csv line {line}: {count} fields but the header has"
    ):
        parse(data)


def test_short_row_error_names_the_missing_columns_and_counts_the_others() -> None:
    data = b"a,b,c,d,e,f\n1,2,3,4,5,6\n7,8\n9\n"
    with pytest.raises(SourceError) as caught:
        parse(data)
    message = str(caught.value)
    assert "line 3: 2 fields but the header has 6 (missing 'c', 'd', 'e' and 1 more)" in message
    assert "1 more short record(s), first on line 4" in message


@pytest.mark.parametrize("data", [b"a,b,c\n1,2,3\n,\n4,5,6\n", b'a,b,c\n1,2,3\n,\n"4\n",5,6\n'])
def test_rows_of_only_delimiters_are_dropped_whatever_their_width(data: bytes) -> None:
    assert [r[0].strip() for r in rows(data)] == ["1", "4"]


@pytest.mark.parametrize(
    ("data", "line", "count"),
    [
        (b"a,b\n1,2\n\n3,4,5\n6,7\n", 4, 3),
        (b'a,b\n1,"x\ny"\n3,4,5\n', 4, 3),
        (b"a,b\n1,2,\n3,4,,x\n", 3, 4),
    ],
)
def test_ragged_row_names_its_line(data: bytes, line: int, count: int) -> None:
    with pytest.raises(
        SourceError, match=rf"in/hr.csv line {line}: {count} fields but the header has 2"
    ):
        parse(data)


@pytest.mark.parametrize("data", [b"a,b\n1,2,\n3,4\n", b"a,b\n1,2,,\n3,4\n", b'a,b\n1,"2\n",\n3,4'])
def test_empty_extra_trailing_fields_are_ignored(data: bytes) -> None:
    assert [r[0] for r in rows(data)] == ["1", "3"]


def test_trailing_delimiter_on_every_line_is_tolerated() -> None:
    records, columns = parse(b"a;b;\n1;2;\n3;4;\n")
    assert columns == ["a", "b"]
    assert [r["b"] for r in records] == ["2", "4"]


def test_unnamed_column_with_values_is_refused() -> None:
    with pytest.raises(SourceError, match=r"column 2 has no header name .* line 3"):
        parse(b"a,,c\n1,,3\n4,5,6\n")


def test_duplicate_headers_refused_after_trimming() -> None:
    with pytest.raises(SourceError, match="duplicate header names: email"):
        parse(b"ref,email, email \n1,a,b\n")


def test_reserved_column_refused() -> None:
    with pytest.raises(SourceError, match="'_line' is reserved"):
        parse(b"ref,_line\n1,2\n")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_an_error(data: bytes) -> None:
    with pytest.raises(SourceError, match=r"source hr: in/hr\.csv is empty"):
        parse(data)


def test_header_only_gives_empty_frame() -> None:
    parsed = CsvParser(source="hr").parse_bytes(b"ref,name\n", "x.csv")
    assert parsed.columns == ["ref", "name"]
    assert parsed.frame.empty
    assert list(parsed.frame.columns) == ["ref", "name", "_file", "_line"]


def test_unclosed_quote_is_an_error() -> None:
    with pytest.raises(SourceError, match="never closed"):
        parse(b'a,b\n1,2\n3,"open\n4,5\n')


def test_binary_file_refused() -> None:
    with pytest.raises(SourceError, match="NUL bytes"):
        parse(b"a,b\n1,\x00\x00\n")


def test_fast_path_handles_quoted_newlines_but_not_stray_quotes() -> None:
    simple = b'ref,name\n1,"Ann, A"\n2,Bob\n'
    assert _fast_parse(simple, ["ref", "name"], ",", 1) is not None
    multiline = b'ref,name\n1,"Ann\n\n""A"""\n\n2,x\n'
    fast = _fast_parse(multiline, ["ref", "name"], ",", 1)
    assert fast is not None
    assert fast[0].to_numpy().tolist() == [["1", 'Ann\n\n"A"'], ["2", "x"]]
    assert fast[1].tolist() == [2, 6]
    stray = b'ref,name\n1,ab"c\n2,"d\ne"\n'
    assert _fast_parse(stray, ["ref", "name"], ",", 1) is None
    assert rows(stray) == [["1", 'ab"c', 2], ["2", "d\ne", 3]]


_cell = st.text(
    alphabet=st.sampled_from(list('ab ,;"\n\r\té0')), min_size=0, max_size=6
) | st.sampled_from(["", "00123", "x"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=0, max_size=8),
    st.sampled_from([",", ";", "\t", "|"]),
    st.lists(st.integers(min_value=0, max_value=2), min_size=9, max_size=9),
    st.booleans(),
)
def test_property_values_and_start_lines_match_the_csv_module(
    records: list[list[str]], delimiter: str, blanks: list[int], crlf: bool
) -> None:
    """Whatever the quoting, every record comes back intact with its physical start line."""
    newline = "\r\n" if crlf else "\n"
    out = io.StringIO()
    # "\r\n" as terminator makes the writer quote any field holding \r or \n.
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    lines: list[int] = []
    expected: list[list[str]] = []
    text = "ref" + delimiter + "name" + delimiter + "note" + newline
    line = 2
    for record, blank in zip(records, blanks, strict=False):
        text += newline * blank
        line += blank
        out.seek(0)
        out.truncate()
        writer.writerow(record)
        chunk = out.getvalue()[:-2] + newline
        text += chunk
        if all(v == "" for v in record):
            line += 1
            continue  # all-empty records are dropped like blank lines
        lines.append(line)
        normalized = [v.replace("\r\n", "\n").replace("\r", "\n") for v in record]
        expected.append(normalized)
        physical = chunk.replace("\r\n", "\n").replace("\r", "\n")
        line += physical.count("\n")
    got = rows(text.encode("utf-8"), delimiter=delimiter)
    assert got == [[*e, n] for e, n in zip(expected, lines, strict=True)]


def write(path: Path, text: str, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def local(tmp_path: Path, **options: object) -> CsvSourceConfig:
    return CsvSourceConfig.model_validate(
        {"name": "hr", "type": "csv", "mapping": "m.yaml", **options},
        context={"base_dir": tmp_path},
    )


def test_local_glob_newest_wins(tmp_path: Path) -> None:
    write(tmp_path / "in" / "hr_1.csv", "ref\nold\n", 1_000_000)
    newest = write(tmp_path / "in" / "hr_0.csv", "ref\nnew\n", 2_000_000)
    source = open_source(local(tmp_path, path="in/hr_*.csv"), base_dir=tmp_path)
    data = source.read()
    assert data.name == "hr"
    assert data.files == [str(newest)]
    assert data.frame["ref"].tolist() == ["new"]
    assert data.frame["_file"].tolist() == [str(newest)]


def test_local_glob_all_merges_with_own_lines(tmp_path: Path) -> None:
    first = write(tmp_path / "in" / "a.csv", "ref,name\n1,Ann\n\n2,Bob\n", 1_000_000)
    second = write(tmp_path / "in" / "b.csv", "ref;dept\n3;HR\n", 2_000_000)
    source = open_source(local(tmp_path, path="in/*.csv", pick="all"), base_dir=tmp_path)
    data = source.read()
    assert data.files == [str(first), str(second)]
    assert data.columns == ["ref", "name", "dept"]
    assert data.frame.to_dict("records") == [
        {"ref": "1", "name": "Ann", "dept": "", "_file": str(first), "_line": 2},
        {"ref": "2", "name": "Bob", "dept": "", "_file": str(first), "_line": 4},
        {"ref": "3", "name": "", "dept": "HR", "_file": str(second), "_line": 2},
    ]


def test_local_no_match(tmp_path: Path) -> None:
    source = open_source(local(tmp_path, path="in/*.csv"), base_dir=tmp_path)
    with pytest.raises(SourceError, match=r"source hr: no file matched .*in/\*\.csv"):
        source.read()


def test_local_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    target = tmp_path / "in" / "hr.csv"
    target.symlink_to(tmp_path / "gone.csv")
    target_dir = tmp_path / "dir.csv"
    target_dir.mkdir()
    parser = CsvParser(source="hr")
    with pytest.raises(SourceError, match=r"cannot read .*gone|cannot read .*hr\.csv"):
        parser.parse_path(target)
    with pytest.raises(SourceError, match=r"source hr: cannot read .*dir\.csv"):
        parser.parse_path(target_dir)


def test_local_archive_only_after_applied_run(tmp_path: Path) -> None:
    path = write(tmp_path / "in" / "hr.csv", "ref\n1\n", 1_000_000)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "hr.csv").write_text("older", encoding="utf-8")
    config = local(tmp_path, path="in/hr.csv", archive_dir="done")
    source = open_source(config, base_dir=tmp_path)
    source.read()
    source.finalize(applied=False)
    assert path.exists()
    source.finalize(applied=True)
    assert not path.exists()
    archived = sorted(p.name for p in (tmp_path / "done").iterdir())
    assert len(archived) == 2
    assert "hr.csv" in archived
    stamped = next(name for name in archived if name != "hr.csv")
    assert stamped.startswith("hr.")
    assert stamped.endswith(".csv")
    assert (tmp_path / "done" / "hr.csv").read_text(encoding="utf-8") == "older"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab,"\n\r ')), max_size=40))
def test_property_fast_and_exact_paths_agree(body: str) -> None:
    """On arbitrary text (stray quotes, ragged rows), the fast path equals the exact one."""
    parser = CsvParser(source="hr", delimiter=",")
    text = "ref,name,note\n" + body
    try:
        got = parser.parse_bytes(text.encode(), "x.csv").frame
    except SourceError as exc:
        got_error: str | None = str(exc)
    else:
        got_error = None
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    exact_error: str | None = None
    try:
        names = ["ref", "name", "note"]
        exact, widths = parser._exact_parse(normalized, names, ",", "x.csv")
        short = _short_records(exact, widths, names)
        exact = exact[(exact[names] != "").any(axis=1)].reset_index(drop=True)
        # The truncation and short-record rules apply after either path; apply them to
        # the exact one too.
        parser._check_not_truncated(text, exact, names, ",", "x.csv")
        parser._check_no_short_records(short, names, "x.csv")
    except SourceError as exc:
        exact_error = str(exc)
    assert (got_error is None) == (exact_error is None), (got_error, exact_error)
    if got_error is None:
        assert got.to_dict("records") == exact.to_dict("records")


def test_cut_last_record_without_line_break_is_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "hr.csv"
    path.write_bytes(b"ref;email;name;status\n1;a@x.nl;Anna;Actief\n2;b@x.nl")
    with pytest.raises(SourceError, match=r"line 3: the last record has 2 of 4 fields"):
        CsvParser(source="hr").parse_path(path)


def test_short_last_record_with_line_break_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hr.csv"
    path.write_bytes(b"ref;email;name;status\n1;a@x.nl;Anna;Actief\n2;b@x.nl\n")
    with pytest.raises(SourceError, match=r"line 3: 2 fields but the header has 4"):
        CsvParser(source="hr").parse_path(path)
