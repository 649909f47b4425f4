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
        ("2021-03-09T00:00:00Z,nan,1.2,1.0,1.1,1", "open is not a finite"),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,0,1", "close is not positive"),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,-1.1,1", "close is not positive"),
        ("2021-03-09T00:00:00Z,1.1,1.0,1.2,1.1,1", "high 1.0 < low 1.2"),
        ("2021-03-01T00:30:00Z,1.1,1.2,1.0,1.1,1", "not after the previous"),
        ("2021-03-08T01:00:00Z,1.1,1.2,1.0,1.1,1", "not after the previous"),
        ("2021-03-09T00:00:00Z,1.1,1.2,1.0,1.1,-3", "volume is negative"),
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
