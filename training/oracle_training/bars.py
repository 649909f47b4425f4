"""Bar CSV I/O (DESIGN.md "Bar files"; contract section 1).

One layout for every tool: header ``time,open,high,low,close,volume``, one bar per line, oldest
first, ``time`` = the bar's open time as ISO-8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``, bid prices, tick
volume (non-negative integer, may be 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
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


def format_time(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> int:
    if len(s) != 20 or s[10] != "T" or s[19] != "Z":
        raise ValueError(f"time {s!r} is not ISO-8601 UTC YYYY-MM-DDTHH:MM:SSZ")
    dt = datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(dt.timestamp())


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
    parts = line.strip().split(",")
    if len(parts) != 6:
        raise ValueError(f"expected 6 comma-separated fields, got {len(parts)}")
    t = parse_time(parts[0])
    o, h, lo, c = (float(x) for x in parts[1:5])
    v = float(parts[5])
    return t, o, h, lo, c, v


def iter_csv(path: str | Path):
    """Yield ``(line_number, bar_tuple | None, error | None)`` for each data line (no validation
    against the previous bar; see :func:`read_bars`)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip()
        if header != HEADER:
            raise BarError(f"{path}:1: header must be {HEADER!r}, got {header!r}")
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
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
