"""Backtest statistics and the trade list of one model over a bar file (``docs/backtest.md``).

The twin of the training environment (the position rule, prices and costs of
:mod:`oracle_training.twin`, the functions ``TradingEnv.step`` calls) runs over the bars through
:func:`oracle_training.stream.run_stream`, as the replay trace does. Every statistic is computed
from the per-bar stream in the same order of operations as ``model-loader/src/backtest.rs`` (plain
left-to-right loops, ``math.sqrt``; no ``sum``/numpy reductions, whose summation order differs),
so ``python -m oracle_training backtest`` and ``oracle backtest`` print the same text and the same
trade list, byte for byte. Keep the two files in step.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from oracle_training.bars import format_time
from oracle_training.twin import ACTIONS

DEFAULT_CAPITAL = 10_000.0
TRADES_HEADER = "entry_time,exit_time,side,intensity,lots,entry_price,exit_price,bars,pnl"

_MINUTES = {
    "M1": 1,
    "M2": 2,
    "M3": 3,
    "M4": 4,
    "M5": 5,
    "M10": 10,
    "M15": 15,
    "M30": 30,
    "H1": 60,
    "H4": 240,
    "H12": 720,
    "D1": 1440,
}


def bars_per_year(timeframe: str) -> float | None:
    """A market open 24 hours on 260 weekdays a year: ``260 * (1440 / minutes)``; W1 is 52."""
    if timeframe == "W1":
        return 52.0
    m = _MINUTES.get(timeframe)
    return None if m is None else float(260 * (1440 // m))


@dataclass
class Trade:
    entry_time: int
    exit_time: int
    direction: int
    intensity: int
    lots: float
    entry_price: float
    exit_price: float
    bars: int
    pnl: float


@dataclass
class OpenTrade:
    entry_time: int
    direction: int
    intensity: int
    lots: float
    entry_price: float
    entry_index: int


@dataclass
class BarRecord:
    """One decided bar: the position (direction, intensity, entry price) before and after the
    action, ``closed`` = (exit price, realised P&L) when the previous position closed, whether a
    position opened, the equity after the action and the open position's unrealised P&L."""

    time: int
    previous: tuple
    position: tuple
    lots: float
    closed: tuple | None
    opened: bool
    equity: float
    unrealized: float


@dataclass
class Ledger:
    equity: list = field(default_factory=list)
    exposed: int = 0
    trades: list = field(default_factory=list)
    open: OpenTrade | None = None
    open_unrealized: float = 0.0
    span: tuple | None = None

    def record(self, bar: BarRecord) -> None:
        index = len(self.equity)
        if bar.closed is not None and self.open is not None:
            o, self.open = self.open, None
            exit_price, pnl = bar.closed
            self.trades.append(
                Trade(
                    o.entry_time,
                    bar.time,
                    o.direction,
                    o.intensity,
                    o.lots,
                    o.entry_price,
                    exit_price,
                    index - o.entry_index,
                    pnl,
                )
            )
        d, i, entry = bar.position
        if bar.opened:
            self.open = OpenTrade(bar.time, d, i, bar.lots, entry, index)
        if d != 0:
            self.exposed += 1
        self.open_unrealized = bar.unrealized
        self.equity.append(bar.equity)
        self.span = (bar.time, bar.time) if self.span is None else (self.span[0], bar.time)

    def statistics(self, capital: float, per_year: float) -> Stats:
        return statistics(self.equity, self.exposed, self.trades, capital, per_year)


@dataclass
class Stats:
    decisions: int
    capital: float
    bars_per_year: float
    net_profit: float
    total_return_pct: float
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    max_drawdown_pct: float
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    win_rate_pct: float | None
    wins: int
    trades: int
    avg_trade_bars: float | None
    exposure_pct: float | None


def statistics(equity, exposed: int, trades, capital: float, per_year: float) -> Stats:
    """The statistics of an equity curve ``E_1 .. E_N`` (money, ``E_0 = 0``), the count of
    decided bars in a position and the closed trades, for an account of ``capital``."""
    n = len(equity)
    nf = float(n)
    returns = []
    prev = 0.0
    for e in equity:
        returns.append((e - prev) / capital)
        prev = e
    sharpe = sortino = None
    if n >= 2:
        total = 0.0
        for r in returns:
            total += r
        mean = total / nf
        squares = 0.0
        downside = 0.0
        for r in returns:
            d = r - mean
            squares += d * d
            if r < 0.0:
                downside += r * r
        sd = math.sqrt(squares / (nf - 1.0))
        dd = math.sqrt(downside / nf)
        annual = math.sqrt(per_year)
        if sd > 0.0:
            sharpe = mean / sd * annual
        if dd > 0.0:
            sortino = mean / dd * annual
    net = equity[-1] if n else 0.0
    peak = max_dd = max_dd_pct = 0.0
    for e in equity:
        if e > peak:
            peak = e
        dd = peak - e
        if dd > max_dd:
            max_dd = dd
        pct = dd / (capital + peak) * 100.0
        if pct > max_dd_pct:
            max_dd_pct = pct
    gross_profit = gross_loss = 0.0
    wins = held = 0
    for t in trades:
        if t.pnl > 0.0:
            gross_profit += t.pnl
            wins += 1
        elif t.pnl < 0.0:
            gross_loss -= t.pnl
        held += t.bars
    count = len(trades)
    if gross_loss > 0.0:
        pf = gross_profit / gross_loss
    elif gross_profit > 0.0:
        pf = math.inf
    else:
        pf = None
    return Stats(
        decisions=n,
        capital=capital,
        bars_per_year=per_year,
        net_profit=net,
        total_return_pct=net / capital * 100.0,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        max_drawdown_pct=max_dd_pct,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=pf,
        win_rate_pct=float(wins) * 100.0 / float(count) if count else None,
        wins=wins,
        trades=count,
        avg_trade_bars=float(held) / float(count) if count else None,
        exposure_pct=float(exposed) * 100.0 / nf if n else None,
    )


def fixed(x: float | None, decimals: int) -> str:
    """``x`` with ``decimals`` (``-0.0`` as ``0.0``); ``n/a`` for None, ``inf`` for +inf."""
    if x is None:
        return "n/a"
    if x == math.inf:
        return "inf"
    return f"{x + 0.0:.{decimals}f}"


def _position_name(direction: int, intensity: int) -> str:
    for name, d, i in ACTIONS:
        if (d, i) == (direction, intensity):
            return name
    return "?"


def summary_text(name: str, accepted: int, ledger: Ledger, s: Stats) -> str:
    n = s.decisions
    lines = []

    def line(label, value):
        lines.append(f"{label:<17}{value}")

    def pct(x):
        return "n/a" if x is None else f"{fixed(x, 2)}%"

    line("backtest", name)
    line("bars", f"{accepted} ({max(accepted - n, 0)} warm-up, {n} decided)")
    span = ledger.span
    line("decided", "none" if span is None else f"{format_time(span[0])} to {format_time(span[1])}")
    line("initial capital", f"{fixed(s.capital, 2)} (account currency)")
    line("net profit", fixed(s.net_profit, 2))
    line("total return", f"{fixed(s.total_return_pct, 4)}%")
    line("sharpe", f"{fixed(s.sharpe, 4)} (annualised, {fixed(s.bars_per_year, 0)} bars a year)")
    line("sortino", fixed(s.sortino, 4))
    line("max drawdown", f"{fixed(s.max_drawdown, 2)} ({fixed(s.max_drawdown_pct, 4)}%)")
    line(
        "profit factor",
        f"{fixed(s.profit_factor, 4)} (gross profit {fixed(s.gross_profit, 2)}, "
        f"gross loss {fixed(s.gross_loss, 2)})",
    )
    line("win rate", f"{pct(s.win_rate_pct)} ({s.wins} of {s.trades})")
    line("trades", f"{s.trades} closed")
    a, e = s.avg_trade_bars, s.exposure_pct
    line("avg trade", "n/a" if a is None else f"{fixed(a, 2)} bars")
    line("exposure", "n/a" if e is None else f"{pct(e)} of decided bars")
    o = ledger.open
    if o is None:
        line("open at end", "none")
    else:
        line(
            "open at end",
            f"{_position_name(o.direction, o.intensity)} since {format_time(o.entry_time)} at "
            f"{fixed(o.entry_price, 10)}, unrealised {fixed(ledger.open_unrealized, 2)}",
        )
    return "\n".join(lines) + "\n"


def trades_csv(trades) -> str:
    out = [TRADES_HEADER]
    for t in trades:
        side = "LONG" if t.direction > 0 else "SHORT"
        out.append(
            f"{format_time(t.entry_time)},{format_time(t.exit_time)},{side},{t.intensity},"
            f"{fixed(t.lots, 2)},{fixed(t.entry_price, 10)},{fixed(t.exit_price, 10)},"
            f"{t.bars},{fixed(t.pnl, 6)}"
        )
    return "\n".join(out) + "\n"


@dataclass
class Backtest:
    name: str
    bars: int
    ledger: Ledger
    stats: Stats

    def summary(self) -> str:
        return summary_text(self.name, self.bars, self.ledger, self.stats)

    def trades_csv(self) -> str:
        return trades_csv(self.ledger.trades)

    def to_json(self) -> dict:
        """The figures as JSON (``--json``): full precision, None for n/a (and for an infinite
        profit factor: ``gross_loss`` is then 0). The same keys and values as the Rust side."""
        s, ledger = self.stats, self.ledger
        span = ledger.span
        o = ledger.open
        return {
            "model": self.name,
            "bars": self.bars,
            "warmup_bars": max(self.bars - s.decisions, 0),
            "decided_bars": s.decisions,
            "first_decided": None if span is None else format_time(span[0]),
            "last_decided": None if span is None else format_time(span[1]),
            "capital": s.capital,
            "bars_per_year": s.bars_per_year,
            "net_profit": s.net_profit,
            "total_return_pct": s.total_return_pct,
            "sharpe": s.sharpe,
            "sortino": s.sortino,
            "max_drawdown": s.max_drawdown,
            "max_drawdown_pct": s.max_drawdown_pct,
            "gross_profit": s.gross_profit,
            "gross_loss": s.gross_loss,
            "profit_factor": s.profit_factor if s.profit_factor != math.inf else None,
            "win_rate_pct": s.win_rate_pct,
            "wins": s.wins,
            "trades": s.trades,
            "avg_trade_bars": s.avg_trade_bars,
            "exposure_pct": s.exposure_pct,
            "open_at_end": None
            if o is None
            else {
                "position": _position_name(o.direction, o.intensity),
                "since": format_time(o.entry_time),
                "entry_price": o.entry_price,
                "unrealized_pnl": ledger.open_unrealized,
            },
        }


def ledger_of_stream(steps, bars, costs) -> Ledger:
    """The ledger of :func:`oracle_training.stream.run_stream`'s steps over ``bars``."""
    from oracle_training.twin import TwinState

    ledger = Ledger()
    before = TwinState()
    for s in steps:
        st = s.state
        if s.decided:
            c = float(bars.close[s.idx])
            d0, i0, e0 = before.position_direction, before.position_intensity, before.entry_price
            changed = s.kind != "hold"
            closed = None
            if changed and d0 != 0:
                # the same expression apply_action adds to realized_pnl (contract section 6)
                exit_ = costs.close_price(d0, c)
                closed = (exit_, costs.realised(d0, i0, e0, exit_))
            d, i = st.position_direction, st.position_intensity
            ledger.record(
                BarRecord(
                    time=int(bars.time[s.idx]),
                    previous=(d0, i0, e0),
                    position=(d, i, st.entry_price),
                    lots=costs.lot_sizes[i],
                    closed=closed,
                    opened=changed and d != 0,
                    equity=st.realized_pnl + s.unrealized,
                    unrealized=s.unrealized,
                )
            )
        before = st
    return ledger


def run_backtest(
    zip_path: Path, bar_csv: Path, capital: float = DEFAULT_CAPITAL, err=None
) -> Backtest:
    """The twin over ``bar_csv`` (rejected lines reported on ``err``, default stderr, and
    skipped)."""
    from oracle_training.bars import Bars
    from oracle_training.modelzip import ModelZip
    from oracle_training.reference import read_ok_bars
    from oracle_training.spec import precompute
    from oracle_training.stream import run_stream

    if not (math.isfinite(capital) and capital > 0.0):
        raise ValueError(
            f"--capital {capital}: the initial capital must be a positive amount of "
            "account currency"
        )
    mz = ModelZip(zip_path)
    spec = mz.spec()
    per_year = bars_per_year(spec.timeframe)
    if per_year is None:
        raise ValueError(
            f"timeframe {spec.timeframe}: no bars-a-year figure to annualise with "
            "(docs/backtest.md)"
        )
    model = mz.load_ppo()
    bars = Bars.from_rows(read_ok_bars(bar_csv, sys.stderr if err is None else err))
    ledger = Ledger()
    if len(bars):
        steps = run_stream(spec, precompute(bars, spec), model)
        ledger = ledger_of_stream(steps, bars, spec.costs)
    return Backtest(spec.name, len(bars), ledger, ledger.statistics(capital, per_year))
