"""Bar data: the real EURUSD hourly bars shipped in the ``backtesting`` package, and a seeded
regime-switching generator for the synthetic (``SYN*``) symbols. See ``docs/data.md``."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from oracle_training.bars import Bars, check_bar, read_bars, write_bars
from oracle_training.spec import WINDOW
from oracle_training.universe import (
    BY_NAME,
    GOLDEN_DECISIONS,
    SYN_TRAIN_BARS,
    TF_SECONDS,
    UNIVERSE,
    ModelDef,
)

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "data"


def data_path(name: str, data_dir: Path = DATA_DIR) -> Path:
    return Path(data_dir) / f"{name}.csv"


# -- real data --------------------------------------------------------------------------------


def backtesting_eurusd() -> Bars:
    """EURUSD hourly bars from ``backtesting/test/EURUSD.csv`` (backtesting 0.6.6; 5,000 bars,
    2017-04-19 .. 2018-02-07). The file has naive timestamps; they are taken as UTC."""
    import backtesting

    src = Path(backtesting.__file__).parent / "test" / "EURUSD.csv"
    rows = []
    prev = None
    with open(src, encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for lineno, r in enumerate(reader, start=2):
            dt = datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            bar = (int(dt.timestamp()), *(float(x) for x in r[1:5]), float(r[5]))
            err = check_bar(*bar, prev_time=prev)
            if err:
                raise ValueError(f"{src}:{lineno}: {err}")
            rows.append(bar)
            prev = bar[0]
    return Bars.from_rows(rows)


# -- synthetic data ---------------------------------------------------------------------------

# regimes: (drift in units of the bar sigma, volatility multiplier, mean reversion per bar)
REGIMES = (
    (0.12, 1.0, 0.0),  # trending up
    (-0.12, 1.1, 0.0),  # trending down
    (0.0, 0.55, 0.03),  # quiet range (mean-reverting to the regime's anchor)
    (0.0, 2.2, 0.0),  # volatile
)
MEAN_DURATION_BARS = 160


def session_times(kind: str, tf: str, n: int, start: datetime) -> np.ndarray:
    """Open times of ``n`` bars: FX and indices trade Monday-Friday around the clock; stocks
    intraday 14:30-21:00 UTC on weekdays; D1 bars are stamped 00:00 on weekdays."""
    step = TF_SECONDS[tf]
    out = []
    t = int(start.timestamp())
    while len(out) < n:
        dt = datetime.fromtimestamp(t, UTC)
        ok = dt.weekday() < 5
        if ok and kind == "stock" and tf != "D1":
            minutes = dt.hour * 60 + dt.minute
            ok = 14 * 60 + 30 <= minutes and minutes + step // 60 <= 21 * 60
        if ok:
            out.append(t)
        t += step
    return np.asarray(out, dtype=np.int64)


def generate(md: ModelDef, n: int) -> Bars:
    """A seeded regime-switching random walk with intrabar paths (for high/low), overnight gaps
    for stocks, and tick volume that follows volatility."""
    rng = np.random.default_rng(md.seed)
    tf = md.timeframe
    times = session_times(md.kind, tf, n, datetime(2019, 1, 7, tzinfo=UTC))
    hours = TF_SECONDS[tf] / 3600.0
    if md.kind == "stock" and tf == "D1":
        hours = 6.5
    elif tf == "D1":
        hours = 24.0
    sigma0 = md.hourly_vol * math.sqrt(hours)
    digits = md.digits
    sub = 8
    reg = int(rng.integers(len(REGIMES)))
    anchor = math.log(md.start_price)
    logp = math.log(md.start_price)
    vol_state = 1.0
    o = np.empty(n)
    h = np.empty(n)
    lo = np.empty(n)
    c = np.empty(n)
    v = np.empty(n)
    base_volume = 40.0 * max(1.0, hours) ** 0.8
    prev_time = None
    for i in range(n):
        if rng.random() < 1.0 / MEAN_DURATION_BARS:
            reg = int(rng.choice([r for r in range(len(REGIMES)) if r != reg]))
            anchor = logp
        drift, vm, mr = REGIMES[reg]
        vol_state = math.exp(0.9 * math.log(vol_state) + 0.1 * rng.normal(0.0, 0.5))
        sig = sigma0 * vm * vol_state
        gap = 0.0
        if md.kind == "stock" and prev_time is not None and times[i] - prev_time > 3 * 3600:
            gap = rng.normal(0.0, 2.0 * sig)
        start = logp + gap
        steps = rng.normal(0.0, sig / math.sqrt(sub), sub)
        path = [start]
        x = start
        for s in steps:
            x = x + drift * sig / sub + s - mr * (x - anchor) / sub
            path.append(x)
        prices = np.exp(np.asarray(path))
        po, pc = round(prices[0], digits), round(prices[-1], digits)
        ph = round(float(prices.max()) * (1 + abs(rng.normal(0, 0.1 * sig))), digits)
        pl = round(float(prices.min()) * (1 - abs(rng.normal(0, 0.1 * sig))), digits)
        ph = max(ph, po, pc)
        pl = min(pl, po, pc)
        o[i], h[i], lo[i], c[i] = po, ph, pl, pc
        v[i] = float(rng.poisson(base_volume * vm * vol_state))
        logp = math.log(pc)
        prev_time = times[i]
    return Bars(times, o, h, lo, c, v)


def aggregate(bars: Bars, tf: str) -> Bars:
    """Aggregate bars into ``tf`` buckets (bucket = floor(open time / tf seconds)): open of the
    first, max high, min low, close of the last, summed volume; stamped with the bucket start."""
    step = TF_SECONDS[tf]
    key = bars.time // step
    rows = []
    i = 0
    n = len(bars)
    while i < n:
        j = i
        while j + 1 < n and key[j + 1] == key[i]:
            j += 1
        rows.append(
            (
                int(key[i] * step),
                float(bars.open[i]),
                float(bars.high[i : j + 1].max()),
                float(bars.low[i : j + 1].min()),
                float(bars.close[j]),
                float(bars.volume[i : j + 1].sum()),
            )
        )
        i = j + 1
    return Bars.from_rows(rows)


def series_length(md: ModelDef) -> int:
    return SYN_TRAIN_BARS + GOLDEN_DECISIONS


def build_series(md: ModelDef) -> Bars:
    if md.real:
        return backtesting_eurusd()
    if md.derived_from:
        src = BY_NAME[md.derived_from]
        step_ratio = TF_SECONDS[md.timeframe] // TF_SECONDS[src.timeframe]
        need = series_length(md) * step_ratio + 8 * step_ratio
        base = generate(src, max(need, series_length(src)))
        return aggregate(base, md.timeframe).slice(0, series_length(md))
    if any(m.derived_from == md.name for m in UNIVERSE):
        # the source of an aggregated series is long enough to feed it
        ratios = [
            TF_SECONDS[m.timeframe] // TF_SECONDS[md.timeframe]
            for m in UNIVERSE
            if m.derived_from == md.name
        ]
        return generate(md, max(series_length(md), (series_length(md) + 8) * max(ratios)))
    return generate(md, series_length(md))


def write_all(data_dir: Path = DATA_DIR, names=None) -> list[Path]:
    out = []
    for md in UNIVERSE:
        if names and md.name not in names:
            continue
        bars = build_series(md)
        p = data_path(md.name, data_dir)
        write_bars(p, bars, md.digits)
        out.append(p)
        print(f"{p.name}: {len(bars)} bars")
    return out


def load_series(name: str, data_dir: Path = DATA_DIR) -> Bars:
    return read_bars(data_path(name, data_dir))


def split(n_bars: int, window: int = WINDOW) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(train, golden)`` index ranges ``[a, b)``: the golden stream is the last
    ``GOLDEN_DECISIONS + window - 1`` bars (its decisions are on bars the policy never trained
    on); training uses every bar before the golden stream's first decision."""
    g0 = n_bars - GOLDEN_DECISIONS - (window - 1)
    return (0, n_bars - GOLDEN_DECISIONS), (g0, n_bars)
