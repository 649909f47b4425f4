r"""Bar CSV I/O (DESIGN.md "Bar files"; contract section 1).

One layout for every tool: header ``time,open,high,low,close,volume``, one bar per line, oldest
first, ``time`` = the bar's open time as ISO-8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``, bid prices, tick
volume (non-negative integer, may be 0).

The grammar is contract section 1 "Bar files", shared with the Rust reader
(``oracle_model::BarReader``) message for message: ASCII decimal numbers
(``-?[0-9]+(\.[0-9]+)?``), no whitespace, no byte-order mark, ``\n`` or ``\r\n`` line ends,
empty lines skipped. Python's ``float()``/``strptime`` would accept ``1_000``, full-width digits
and spaces, so neither is used on file text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = "time,open,high,low,close,volume"


class BarError(ValueError):
    """A bar that the contract rejects; the message names the line number."""


@dataclass
class Bars:
    """A bar series as column arrays (time: int64 epoch seconds; prices/volume: float64)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(
            self.time[start:stop].copy(),
            self.open[start:stop].copy(),
            self.high[start:stop].copy(),
            self.low[start:stop].copy(),
            self.close[start:stop].copy(),
            self.volume[start:stop].copy(),
        )

    @staticmethod
    def from_rows(rows: list[tuple]) -> Bars:
        if not rows:
            return Bars(*(np.zeros(0, dtype=np.int64),), *(np.zeros(0) for _ in range(5)))
        cols = list(zip(*rows, strict=True))
        return Bars(
            np.asarray(cols[0], dtype=np.int64),
            np.asarray(cols[1], dtype=np.float64),
            np.asarray(cols[2], dtype=np.float64),
            np.asarray(cols[3], dtype=np.float64),
            np.asarray(cols[4], dtype=np.float64),
            np.asarray(cols[5], dtype=np.float64),
        )


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - 1 if m <= 2 else y
    era = y // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def _days_in_month(y: int, m: int) -> int:
    if m in (1, 3, 5, 7, 8, 10, 12):
        return 31
    if m in (4, 6, 9, 11):
        return 30
    return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28


def format_time(t: int) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (any year, as the Rust side)."""
    t = int(t)
    days, secs = divmod(t, 86400)
    y, m, d = _civil_from_days(days)
    return f"{y:04}-{m:02}-{d:02}T{secs // 3600:02}:{secs % 3600 // 60:02}:{secs % 60:02}Z"


_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
COLUMNS = ("open", "high", "low", "close", "volume")


def quote(s: str) -> str:
    """``s`` in double quotes as the bar-file messages print a field (contract section 1):
    printable ASCII as is, ``"`` and ``\\`` escaped with ``\\``, anything else ``\\u{HEX}``."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    out.append('"')
    return "".join(out)


def parse_time(s: str) -> int:
    """``YYYY-MM-DDTHH:MM:SSZ`` (ASCII digits, a real date) as epoch seconds."""
    m = _TIME.fullmatch(s)
    bad = ValueError(f"time {quote(s)} is not ISO-8601 UTC YYYY-MM-DDTHH:MM:SSZ")
    if m is None:
        raise bad
    y, mo, d, h, mi, se = (int(g) for g in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59):
        raise bad
    if se > 59:
        raise bad
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se


def parse_decimal(s: str) -> float | None:
    """An ASCII decimal ``-?[0-9]+(\\.[0-9]+)?`` as a float; None for anything else."""
    if _DECIMAL.fullmatch(s) is None:
        return None
    return float(s)


def check_bar(t: int, o: float, h: float, lo: float, c: float, v: float, prev_time: int | None):
    """Return None when the bar is acceptable, else the reason (contract section 1)."""
    for name, x in (("open", o), ("high", h), ("low", lo), ("close", c)):
        if not math.isfinite(x):
            return f"{name} is not a finite number ({x!r})"
        if x <= 0.0:
            return f"{name} is not positive ({x!r})"
    if h < lo:
        return f"high {h!r} < low {lo!r}"
    if not math.isfinite(v) or v < 0.0:
        return f"volume is negative or not finite ({v!r})"
    if prev_time is not None and t <= prev_time:
        return (
            f"time {format_time(t)} is not after the previous bar's time {format_time(prev_time)}"
        )
    return None


def _parse_line(line: str) -> tuple:
    """One data line (without its line end) as a bar checked on its own (contract section 1);
    ValueError with the contract's message otherwise. The order of the checks is the Rust
    reader's."""
    parts = line.split(",")
    if len(parts) != 6:
        raise ValueError(f"expected 6 comma-separated fields, found {len(parts)}")
    t = parse_time(parts[0])
    texts = parts[1:]
    vals = []
    for name, text in zip(COLUMNS, texts, strict=True):
        x = parse_decimal(text)
        if x is None:
            raise ValueError(f"{name} {quote(text)} is not a decimal number")
        vals.append(x)
    for name, text, x in zip(COLUMNS, texts, vals, strict=True):
        if not math.isfinite(x):
            raise ValueError(f"{name} {quote(text)} is not a finite number")
    for name, text, x in zip(COLUMNS[:4], texts[:4], vals[:4], strict=True):
        if x <= 0.0:
            raise ValueError(f"{name} {quote(text)} is not positive")
    if vals[1] < vals[2]:
        raise ValueError(f"high {quote(texts[1])} is below low {quote(texts[2])}")
    if vals[4] < 0.0:
        raise ValueError(f"volume {quote(texts[4])} is negative")
    return (t, *vals)


def _lines(f):
    """``(line_number, text)`` of a binary file: split on ``\\n``, one ``\\r`` before it
    dropped, decoded as UTF-8 with U+FFFD for bad bytes (as Rust's ``from_utf8_lossy``)."""
    for lineno, raw in enumerate(f, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        yield lineno, raw.decode("utf-8", errors="replace")


def iter_csv(path: str | Path):
    """Yield ``(line_number, bar_tuple | None, error | None)`` for each data line; a bar is
    checked on its own but not against the previous bar (see :func:`read_bars`)."""
    with open(path, "rb") as f:
        lines = _lines(f)
        _, header = next(lines, (1, ""))
        if header != HEADER:
            hint = ""
            if header.startswith("\ufeff"):
                hint = " (the file starts with a UTF-8 byte-order mark; save it without one)"
            raise BarError(f'{path}:1: header must be "{HEADER}", found {quote(header)}{hint}')
        for lineno, line in lines:
            if not line:
                continue
            try:
                yield lineno, _parse_line(line), None
            except ValueError as e:
                yield lineno, None, str(e)


def read_bars(path: str | Path, skip_bad: bool = False, on_skip=None) -> Bars:
    """Read a bar CSV. A bad line raises :class:`BarError` naming the line, unless ``skip_bad``
    (then ``on_skip(lineno, reason)`` is called and the line is skipped, state unchanged)."""
    rows: list[tuple] = []
    prev: int | None = None
    for lineno, bar, err in iter_csv(path):
        if err is None:
            err = check_bar(*bar, prev_time=prev)
        if err is not None:
            msg = f"{path}:{lineno}: bar rejected: {err}"
            if not skip_bad:
                raise BarError(msg)
            if on_skip is not None:
                on_skip(lineno, err)
            continue
        rows.append(bar)
        prev = bar[0]
    return Bars.from_rows(rows)


def fmt_price(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def write_bars(path: str | Path, bars: Bars, digits: int) -> None:
    """Write a bar CSV (prices with ``digits`` decimals, volume as an integer), atomically."""
    path = Path(path)
    lines = [HEADER]
    for i in range(len(bars)):
        lines.append(
            f"{format_time(bars.time[i])},{fmt_price(bars.open[i], digits)},"
            f"{fmt_price(bars.high[i], digits)},{fmt_price(bars.low[i], digits)},"
            f"{fmt_price(bars.close[i], digits)},{int(bars.volume[i])}"
        )
    from oracle_training.util import atomic_write_bytes

    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
