"""Bar CSV validation (contract section 1)."""

from __future__ import annotations

import pytest

from oracle_training.bars import BarError, read_bars, write_bars

HDR = "time,open,high,low,close,volume\n"
GOOD = [
    "2021-03-01T00:00:00Z,1.1,1.2,1.0,1.15,10",
    "2021-03-01T01:00:00Z,1.15,1.2,1.1,1.12,0",  # zero volume is fine
    "2021-03-08T01:00:00Z,1.12,1.3,1.1,1.2,5",  # a gap (weekend) is fine
]


def write(tmp_path, lines):
    p = tmp_path / "b.csv"
    p.write_text(HDR + "\n".join(lines) + "\n")
    return p


def test_good_file_roundtrip(tmp_path):
    b = read_bars(write(tmp_path, GOOD))
    assert len(b) == 3 and b.volume[1] == 0.0
    out = tmp_path / "o.csv"
    write_bars(out, b, 5)
    assert len(read_bars(out)) == 3


@pytest.mark.parametrize(
    "bad, why",
    [
        # The grammar (contract section 1) has no "nan": it is not a decimal number.
        ("2021-03-09T00:00:00Z,nan,1.2,1.0,1.1,1", 'open "nan" is not a decimal number'),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,0,1", 'close "0" is not positive'),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,-1.1,1", 'close "-1.1" is not positive'),
        ("2021-03-09T00:00:00Z,1.1,1.0,1.2,1.1,1", 'high "1.0" is below low "1.2"'),
        ("2021-03-01T00:30:00Z,1.1,1.2,1.0,1.1,1", "not after the previous"),
        ("2021-03-08T01:00:00Z,1.1,1.2,1.0,1.1,1", "not after the previous"),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,1.1,-3", 'volume "-3" is negative'),
        ("2021-03-09 00:00:00,1.1,1.2,1.0,1.1,1", "ISO-8601"),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,1.1", "6 comma-separated"),
    ],
)
def test_bad_line_names_line_number(tmp_path, bad, why):
    p = write(tmp_path, [*GOOD, bad])
    with pytest.raises(BarError) as e:
        read_bars(p)
    assert ":5:" in str(e.value) and why in str(e.value)
    # skipping mode: the bad line is reported and the state is unchanged
    seen = []
    b = read_bars(p, skip_bad=True, on_skip=lambda n, r: seen.append(n))
    assert seen == [5] and len(b) == 3


def test_bad_header(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(BarError, match=":1: header"):
        read_bars(p)


@pytest.mark.parametrize(
    "field, why",
    [
        ("1_1", '"1_1" is not a decimal number'),
        ("1_000", '"1_000" is not a decimal number'),
        ("\uff11.2", '"\\u{ff11}.2" is not a decimal number'),
        (" 1.2", '" 1.2" is not a decimal number'),
        ("1.2 ", '"1.2 " is not a decimal number'),
        ("+1.2", '"+1.2" is not a decimal number'),
        ("1e3", '"1e3" is not a decimal number'),
        (".5", '".5" is not a decimal number'),
    ],
)
def test_python_float_spellings_outside_the_grammar_are_refused(tmp_path, field, why):
    p = write(tmp_path, [*GOOD, f"2021-03-09T00:00:00Z,{field},1.3,1.0,1.1,1"])
    with pytest.raises(BarError) as e:
        read_bars(p)
    assert ":5:" in str(e.value) and why in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "time",
    ["\uff12021-03-09T00:00:00Z", "2021-03-09T00:00:00Z ", " 2021-03-09T00:00:00Z"],
)
def test_times_outside_the_grammar_are_refused(tmp_path, time):
    p = write(tmp_path, [*GOOD, f"{time},1.1,1.3,1.0,1.1,1"])
    with pytest.raises(BarError, match=":5: bar rejected: time .* is not ISO-8601"):
        read_bars(p)


def test_a_byte_order_mark_is_refused(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (HDR + GOOD[0] + "\n").encode())
    with pytest.raises(BarError, match="byte-order mark"):
        read_bars(p)


def test_crlf_line_ends_are_read(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes((HDR + "\n".join(GOOD) + "\n").replace("\n", "\r\n").encode())
    assert len(read_bars(p)) == 3
