"""Position rule, prices and costs (contract section 6)."""

from __future__ import annotations

import numpy as np
import pytest

from oracle_training.twin import ACTIONS, Costs, TwinState, apply_action, unrealised_money
from oracle_training.universe import FX5, INDEX, STOCK

EURUSD = Costs.from_config(FX5)


def test_worked_example_eurusd():
    c = EURUSD
    assert c.money_per_point == 1.0
    s = TwinState()
    assert apply_action(s, c, 1, 1.08500) == "open"
    assert s.entry_price == 1.08500 + 9 * 0.00001
    assert abs(s.entry_price - 1.08509) < 1e-12
    assert apply_action(s, c, 0, 1.08700) == "close"
    exit_ = 1.08700 - 2 * 0.00001
    expect = (exit_ - (1.08500 + 9 * 0.00001)) * 1.0 / 0.00001 * 1.0 * 0.01 - 7.0 * 0.01
    assert s.realized_pnl == expect  # bit for bit, left to right
    assert abs(s.realized_pnl - 1.82) < 1e-9
    assert s.position_direction == 0 and s.entry_price == 0.0 and s.trades == 1


def test_short_prices_and_unrealised():
    c = EURUSD
    s = TwinState()
    apply_action(s, c, 6, 1.20000)  # SHORT_STRONG opens at bid - slippage
    assert s.entry_price == 1.20000 - 2.0 * 0.00001
    mark = 1.20000 + (7.0 + 2.0) * 0.00001
    u = unrealised_money(s, c, 1.20000)
    assert u == (mark - s.entry_price) * -1.0 / 0.00001 * 1.0 * 0.05
    assert abs(u - (-0.55)) < 1e-9  # 11 points * 0.05 lot


def test_money_per_point_by_digits():
    assert Costs.from_config(INDEX).money_per_point == 0.01
    assert Costs.from_config(STOCK).money_per_point == 0.01
    jpy = Costs.from_config(dict(FX5, digits=3, point=0.001, pip_value=6.7))
    assert jpy.money_per_point == 6.7 / 10.0
    # AAPL-like: 1 share moving 1.00 is 100 points * 0.01 = 1.0 money per lot
    s = TwinState()
    sc = Costs.from_config(dict(STOCK, spread_points=0, slippage_points=0, commission_per_lot=0))
    apply_action(s, sc, 1, 100.0)
    apply_action(s, sc, 0, 101.0)
    assert abs(s.realized_pnl - 1.0) < 1e-9


def random_runs(n=400, seed=11):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = int(rng.integers(1, 60))
        # bias towards repeats so holds are common, like a real policy
        acts = [int(rng.integers(0, 7))]
        for _ in range(k - 1):
            acts.append(acts[-1] if rng.random() < 0.4 else int(rng.integers(0, 7)))
        yield acts, float(rng.uniform(0.5, 2.0))


@pytest.mark.parametrize("actions, p0", list(random_runs()))
def test_position_rule_properties(actions, p0):
    """Property test over 400 seeded random action sequences."""
    c = EURUSD
    s = TwinState()
    price = p0
    for k, a in enumerate(actions):
        price = price * (1.0 + 0.001 * ((k * 7919) % 11 - 5))
        before = s.copy()
        kind = apply_action(s, c, a, price)
        _, d, i = ACTIONS[a]
        # after any action the position is exactly the action's target
        assert (s.position_direction, s.position_intensity) == (d, i)
        if (d, i) == (before.position_direction, before.position_intensity):
            # hold: nothing changes at all (no re-entry, no cost)
            assert kind == "hold" and s == before
            continue
        if before.position_direction != 0:
            # closed fully: realised changed by exactly that position's P&L
            exit_ = c.close_price(before.position_direction, price)
            pnl = c.realised(
                before.position_direction, before.position_intensity, before.entry_price, exit_
            )
            assert s.realized_pnl == before.realized_pnl + pnl
        else:
            assert s.realized_pnl == before.realized_pnl
        if d != 0:
            assert s.entry_price == c.open_price(d, price)
            assert s.trades == before.trades + 1
            if before.position_direction == d:
                assert kind == "resize"
            elif before.position_direction == -d:
                assert kind == "flip"
            else:
                assert kind == "open"
        else:
            assert s.entry_price == 0.0 and s.trades == before.trades and kind == "close"


def test_wait_while_flat_holds():
    s = TwinState()
    assert apply_action(s, EURUSD, 0, 1.1) == "hold"
    assert s == TwinState()
