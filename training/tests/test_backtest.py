"""Backtest statistics (docs/backtest.md): each figure on hand-made series, the equity stream
against the training environment, and ``python -m oracle_training backtest``.

The Rust side prints the same text: model-loader/tests/backtest.rs holds the two byte-identical
on every bundled model."""

from __future__ import annotations

import io
import math

import pytest
from paths import DATA, MODELS

from oracle_training.backtest import (
    TRADES_HEADER,
    BarRecord,
    Ledger,
    Trade,
    bars_per_year,
    fixed,
    ledger_of_stream,
    run_backtest,
    statistics,
    summary_text,
    trades_csv,
)

ZIP = MODELS / "EURUSD_H1.zip"
needs_models = pytest.mark.skipif(not ZIP.exists(), reason="models not built")


def close(a, b):
    return abs(a - b) <= 1e-12 * max(abs(b), 1.0)


def trade(pnl, bars):
    return Trade(0, 0, 1, 1, 0.01, 1.0, 1.0, bars, pnl)


def test_sharpe_and_sortino_of_a_hand_made_curve():
    # Equity 0 -> 100 -> 50 -> 150 -> 120 on C = 1000: returns 0.1, -0.05, 0.1, -0.03; mean 0.03;
    # squared deviations 0.0049 + 0.0064 + 0.0049 + 0.0036 = 0.0198, / (N - 1) = 0.0066;
    # downside (0.0025 + 0.0009) / N = 0.00085; D1: sqrt(260).
    s = statistics([100.0, 50.0, 150.0, 120.0], 0, [], 1000.0, 260.0)
    assert close(s.sharpe, 0.03 / math.sqrt(0.0066) * math.sqrt(260.0))
    assert abs(s.sharpe - 5.954372) < 1e-6
    assert close(s.sortino, 0.03 / math.sqrt(0.00085) * math.sqrt(260.0))
    assert abs(s.sortino - 16.59199) < 1e-4
    assert s.net_profit == 120.0 and close(s.total_return_pct, 12.0)


def test_max_drawdown_is_the_largest_fall_from_the_running_peak():
    s = statistics([100.0, 50.0, 150.0, 120.0], 0, [], 1000.0, 260.0)
    assert s.max_drawdown == 50.0  # 100 -> 50 (the later 150 -> 120 is 30)
    assert close(s.max_drawdown_pct, 50.0 / 1100.0 * 100.0)
    s = statistics([-10.0, -30.0, -20.0], 0, [], 1000.0, 260.0)  # peak is E_0 = 0
    assert s.max_drawdown == 30.0 and close(s.max_drawdown_pct, 3.0)


def test_profit_factor_win_rate_and_length_of_closed_trades():
    trades = [trade(30.0, 2), trade(-10.0, 1), trade(0.0, 1), trade(20.0, 4), trade(-20.0, 2)]
    s = statistics([0.0] * 10, 6, trades, 1000.0, 260.0)
    assert close(s.profit_factor, 50.0 / 30.0)
    assert (s.gross_profit, s.gross_loss) == (50.0, 30.0)
    assert (s.wins, s.trades, s.win_rate_pct) == (2, 5, 40.0)
    assert s.avg_trade_bars == 2.0 and s.exposure_pct == 60.0
    assert (s.sharpe, s.sortino) == (None, None)  # a flat curve has no spread


def test_undefined_figures_print_as_n_a_and_inf():
    s = statistics([], 0, [], 1000.0, 6240.0)
    assert (s.profit_factor, s.win_rate_pct, s.avg_trade_bars, s.exposure_pct) == (None,) * 4
    wins_only = statistics([5.0, 5.0], 1, [trade(5.0, 1)], 1000.0, 6240.0)
    assert wins_only.profit_factor == math.inf and wins_only.sortino is None
    text = summary_text("X_H1", 0, Ledger(), s)
    assert "\nsharpe           n/a (annualised, 6240 bars a year)\n" in text
    assert "\nprofit factor    n/a (gross profit 0.00, gross loss 0.00)\n" in text
    assert "\navg trade        n/a\nexposure         n/a\n" in text
    assert "\nwin rate         n/a (0 of 0)\n" in text
    assert fixed(math.inf, 4) == "inf" and fixed(-0.0, 2) == "0.00"


def test_a_reversal_closes_one_trade_and_opens_another():
    flat, long_, short = (0, 0, 0.0), (1, 1, 1.1), (-1, 3, 1.2)
    rows = [
        (flat, long_, None, True, -0.1),
        (long_, long_, None, False, 0.5),
        (long_, short, (1.19, 0.8), True, 0.7),
        (short, short, None, False, 0.2),
        (short, flat, (1.25, -2.0), False, -1.2),
    ]
    ledger = Ledger()
    for i, (prev, pos, closed, opened, eq) in enumerate(rows):
        lots = (0.0, 0.01, 0.03, 0.05)[pos[1]]
        ledger.record(BarRecord(3600 * i, prev, pos, lots, closed, opened, eq, 0.0))
    a, b = ledger.trades
    assert (a.entry_time, a.exit_time, a.bars, a.pnl, a.exit_price) == (0, 7200, 2, 0.8, 1.19)
    assert (b.entry_time, b.exit_time, b.bars, b.pnl, b.lots) == (7200, 14400, 2, -2.0, 0.05)
    assert ledger.open is None
    s = ledger.statistics(1000.0, 6240.0)
    assert s.exposure_pct == 80.0 and s.win_rate_pct == 50.0 and close(s.profit_factor, 0.4)
    assert trades_csv(ledger.trades) == (
        f"{TRADES_HEADER}\n"
        "1970-01-01T00:00:00Z,1970-01-01T02:00:00Z,LONG,1,0.01,1.1000000000,1.1900000000,2,0.800000\n"
        "1970-01-01T02:00:00Z,1970-01-01T04:00:00Z,SHORT,3,0.05,1.2000000000,1.2500000000,2,-2.000000\n"
    )


def test_bars_a_year_per_timeframe():
    assert bars_per_year("H1") == 6240.0 and bars_per_year("M15") == 24960.0
    assert bars_per_year("D1") == 260.0 and bars_per_year("W1") == 52.0
    assert bars_per_year("MN1") is None


@needs_models
def test_the_backtest_equity_is_the_training_environments_equity(tmp_path):
    """Driving ``TradingEnv`` with the backtest's actions gives the same position and equity
    (realised + unrealised, costs included) after every decided bar."""
    from oracle_training.bars import Bars
    from oracle_training.env import TradingEnv
    from oracle_training.modelzip import ModelZip
    from oracle_training.reference import read_ok_bars
    from oracle_training.spec import precompute
    from oracle_training.stream import run_stream

    mz = ModelZip(ZIP)
    spec = mz.spec()
    rows = read_ok_bars(DATA / "EURUSD_H1.csv")[-(spec.window + 600) :]
    bars = Bars.from_rows(rows)
    data = precompute(bars, spec)
    steps = run_stream(spec, data, mz.load_ppo())
    ledger = ledger_of_stream(steps, bars, spec.costs)
    decided = [s for s in steps if s.decided]
    assert len(ledger.equity) == len(decided) == 601 and ledger.trades

    env = TradingEnv(spec, data)
    env.reset()
    for s, eq in zip(decided[:-1], ledger.equity, strict=False):
        assert env.t == s.idx
        env.step(s.action)
        got, want = env.state, s.state
        for k in ("position_direction", "position_intensity", "entry_price", "realized_pnl"):
            assert getattr(got, k) == getattr(want, k), (s.idx, k)
        assert env.equity(float(bars.close[s.idx])) == eq
    # The trades' realised P&L adds up to the realised P&L of the run.
    total = 0.0
    for t in ledger.trades:
        total += t.pnl
    assert abs(total - decided[-1].state.realized_pnl) < 1e-9


@needs_models
def test_backtest_command_prints_the_figures_and_writes_the_trade_list(tmp_path, capsys):
    from oracle_training.cli import main

    lines = (DATA / "EURUSD_H1.csv").read_text().splitlines()
    bars = tmp_path / "bars.csv"
    bars.write_text("\n".join([lines[0], *lines[-1000:], "2030-01-01T00:00:00Z,1,1,1,x,1"]) + "\n")
    trades = tmp_path / "t" / "trades.csv"
    main(["backtest", "--model", str(ZIP), "--bars", str(bars), "--trades", str(trades)])
    out, err = capsys.readouterr()
    b = run_backtest(ZIP, bars, err=io.StringIO())
    assert out == b.summary()
    assert out.startswith("backtest         EURUSD_H1\nbars             1000 (349 warm-up, 651")
    assert trades.read_text() == b.trades_csv()
    assert len(trades.read_text().splitlines()) == b.stats.trades + 1 > 1
    assert f":{1002}: bar rejected" in err and f"({b.stats.trades} closed trades)" in err


@needs_models
def test_a_capital_that_is_not_positive_is_refused():
    with pytest.raises(
        ValueError, match="--capital 0.0: the initial capital must be a positive amount"
    ):
        run_backtest(ZIP, DATA / "EURUSD_H1.csv", 0.0)


@needs_models
def test_backtest_command_json_has_the_figures_at_full_precision(tmp_path, capsys):
    import json

    from oracle_training.cli import main

    lines = (DATA / "EURUSD_H1.csv").read_text().splitlines()
    bars = tmp_path / "bars.csv"
    bars.write_text("\n".join([lines[0], *lines[-700:]]) + "\n")
    trades = tmp_path / "trades.csv"
    args = ["--model", str(ZIP), "--bars", str(bars), "--trades", str(trades)]
    main(["backtest", *args, "--capital", "2500", "--json"])
    out = json.loads(capsys.readouterr().out)
    b = run_backtest(ZIP, bars, 2500.0)
    assert out == b.to_json()
    assert out["capital"] == 2500.0 and out["trades"] == b.stats.trades > 0
    assert out["net_profit"] == b.ledger.equity[-1] and out["sharpe"] == b.stats.sharpe


@needs_models
def test_a_missing_bar_file_is_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "oracle_training", "backtest", "--model", str(ZIP)]
        + ["--bars", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "nope.csv: no such file" in r.stderr, r.stderr
