"""Actions, the position rule, prices and costs (contract sections 5-7)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ACTIONS = (
    ("WAIT", 0, 0),
    ("LONG_WEAK", 1, 1),
    ("LONG_MODERATE", 1, 2),
    ("LONG_STRONG", 1, 3),
    ("SHORT_WEAK", -1, 1),
    ("SHORT_MODERATE", -1, 2),
    ("SHORT_STRONG", -1, 3),
)
N_ACTIONS = len(ACTIONS)


def actions_metadata() -> dict:
    return {
        str(i): {"name": name, "direction": d, "intensity": k}
        for i, (name, d, k) in enumerate(ACTIONS)
    }


@dataclass(frozen=True)
class Costs:
    """The price/cost part of ``training_config``."""

    point: float
    pip_value: float
    spread_points: float
    slippage_points: float
    commission_per_lot: float
    digits: int
    lot_sizes: tuple

    @classmethod
    def from_config(cls, tc: dict) -> Costs:
        return cls(
            float(tc["point"]),
            float(tc["pip_value"]),
            float(tc["spread_points"]),
            float(tc["slippage_points"]),
            float(tc["commission_per_lot"]),
            int(tc["digits"]),
            tuple(float(x) for x in tc["lot_sizes"]),
        )

    @property
    def money_per_point(self) -> float:
        points_per_pip = 10.0 if self.digits in (3, 5) else 1.0
        return self.pip_value / points_per_pip

    def open_price(self, direction: int, c: float) -> float:
        if direction > 0:
            return c + (self.spread_points + self.slippage_points) * self.point
        return c - self.slippage_points * self.point

    def close_price(self, direction: int, c: float) -> float:
        """The mark: the price the open position would close at on this bar."""
        if direction > 0:
            return c - self.slippage_points * self.point
        return c + (self.spread_points + self.slippage_points) * self.point

    def realised(self, direction: int, intensity: int, entry: float, exit_: float) -> float:
        lots = self.lot_sizes[intensity]
        return (exit_ - entry) * float(
            direction
        ) / self.point * self.money_per_point * lots - self.commission_per_lot * lots

    def unrealised(self, direction: int, intensity: int, entry: float, mark: float) -> float:
        lots = self.lot_sizes[intensity]
        return (mark - entry) * float(direction) / self.point * self.money_per_point * lots


@dataclass
class TwinState:
    """The persisted twin state (contract section 7)."""

    last_bar_time: int | None = None
    bars_seen: int = 0
    position_direction: int = 0
    position_intensity: int = 0
    entry_price: float = 0.0
    realized_pnl: float = 0.0
    trades: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TwinState:
        return cls(**d)

    def copy(self) -> TwinState:
        return TwinState(**asdict(self))


def upnl_norm(state: TwinState, costs: Costs, c: float, clip: float) -> float:
    d = state.position_direction
    if d == 0:
        return 0.0
    mark = costs.close_price(d, c)
    x = float(d) * (mark - state.entry_price) / state.entry_price * 100.0
    return min(max(x, -clip), clip)


def unrealised_money(state: TwinState, costs: Costs, c: float) -> float:
    d = state.position_direction
    if d == 0:
        return 0.0
    return costs.unrealised(d, state.position_intensity, state.entry_price, costs.close_price(d, c))


def apply_action(state: TwinState, costs: Costs, action: int, c: float) -> str:
    """The seed's position rule at bar close ``c``. Returns ``hold``, ``close``, ``open``,
    ``flip`` (direction change) or ``resize`` (same direction, other intensity)."""
    _, td, ti = ACTIONS[action]
    d, i = state.position_direction, state.position_intensity
    if td == d and ti == i:
        return "hold"
    if d != 0:
        exit_ = costs.close_price(d, c)
        state.realized_pnl = state.realized_pnl + costs.realised(d, i, state.entry_price, exit_)
        state.position_direction = 0
        state.position_intensity = 0
        state.entry_price = 0.0
    if td != 0:
        state.position_direction = td
        state.position_intensity = ti
        state.entry_price = costs.open_price(td, c)
        state.trades += 1
    if d == 0:
        return "open"
    if td == 0:
        return "close"
    return "resize" if td == d else "flip"
