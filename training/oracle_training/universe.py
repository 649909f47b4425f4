"""The 20 sample models: symbol, timeframe, data source, instrument costs, HMM covariance type.

These are samples for the runtime's tests and demos, **not trading advice**. Only EURUSD_H1 is
real market data (the ``backtesting`` package's EURUSD hourly bars); every ``SYN*`` symbol is
synthetic (a seeded regime-switching generator, :mod:`oracle_training.data`).
"""

from __future__ import annotations

from dataclasses import dataclass

# decision bars in each golden stream (the contract asks for >= 2,000 after the window fills)
GOLDEN_DECISIONS = 2050
# bars of the training split of a synthetic series
SYN_TRAIN_BARS = 1650

TF_SECONDS = {
    "M5": 300,
    "M15": 900,
    "M30": 1800,
    "H1": 3600,
    "H4": 14400,
    "D1": 86400,
}

FX5 = {
    "point": 0.00001,
    "pip_value": 10.0,
    "spread_points": 7,
    "slippage_points": 2,
    "commission_per_lot": 7.0,
    "digits": 5,
    "lot_sizes": [0, 0.01, 0.03, 0.05],
}
FX3 = {
    "point": 0.001,
    "pip_value": 6.7,
    "spread_points": 9,
    "slippage_points": 2,
    "commission_per_lot": 7.0,
    "digits": 3,
    "lot_sizes": [0, 0.01, 0.03, 0.05],
}
# US500-like CFD: 1 lot = 1 USD per index point, so 0.01 USD per 0.01 point
INDEX = {
    "point": 0.01,
    "pip_value": 0.01,
    "spread_points": 50,
    "slippage_points": 10,
    "commission_per_lot": 0.0,
    "digits": 2,
    "lot_sizes": [0, 0.1, 0.3, 0.5],
}
# AAPL-like stock CFD: 1 lot = 1 share, 0.01 USD per 0.01 move
STOCK = {
    "point": 0.01,
    "pip_value": 0.01,
    "spread_points": 2,
    "slippage_points": 1,
    "commission_per_lot": 0.02,
    "digits": 2,
    "lot_sizes": [0, 1, 3, 5],
}


@dataclass(frozen=True)
class ModelDef:
    symbol: str
    timeframe: str
    kind: str  # fx5 | fx3 | index | stock
    covariance_type: str  # diag | full
    seed: int
    start_price: float = 1.0
    hourly_vol: float = 0.001  # log-return sigma per hour in the base regime
    derived_from: str | None = None  # "SYM_TF" this series is aggregated from

    @property
    def name(self) -> str:
        return f"{self.symbol}_{self.timeframe}"

    @property
    def training_config(self) -> dict:
        base = {"fx5": FX5, "fx3": FX3, "index": INDEX, "stock": STOCK}[self.kind]
        return dict(base, lot_sizes=list(base["lot_sizes"]))

    @property
    def digits(self) -> int:
        return int(self.training_config["digits"])

    @property
    def real(self) -> bool:
        return not self.symbol.startswith("SYN")


UNIVERSE: list[ModelDef] = [
    ModelDef("EURUSD", "H1", "fx5", "full", 101),
    ModelDef("SYNFX01", "M15", "fx5", "full", 201, 1.1, 0.0010),
    ModelDef("SYNFX01", "H1", "fx5", "diag", 202, 1.1, 0.0010, derived_from="SYNFX01_M15"),
    ModelDef("SYNFX02", "M5", "fx5", "diag", 203, 1.27, 0.0011),
    ModelDef("SYNFX03", "H1", "fx3", "diag", 204, 135.0, 0.0012),
    ModelDef("SYNFX04", "H4", "fx5", "diag", 205, 0.66, 0.0010),
    ModelDef("SYNFX05", "M30", "fx5", "diag", 206, 0.91, 0.0009),
    ModelDef("SYNFX06", "D1", "fx5", "diag", 207, 1.35, 0.0008),
    ModelDef("SYNFX07", "H1", "fx3", "diag", 208, 160.0, 0.0011),
    ModelDef("SYNFX08", "M15", "fx5", "diag", 209, 0.88, 0.0010),
    ModelDef("SYNIDX01", "M15", "index", "diag", 301, 4200.0, 0.0015),
    ModelDef("SYNIDX02", "H1", "index", "full", 302, 15500.0, 0.0016),
    ModelDef("SYNIDX03", "M5", "index", "diag", 303, 7400.0, 0.0014),
    ModelDef("SYNIDX04", "H4", "index", "diag", 304, 38000.0, 0.0013),
    ModelDef("SYNIDX05", "D1", "index", "diag", 305, 2900.0, 0.0012),
    ModelDef("SYNSTK01", "D1", "stock", "full", 401, 150.0, 0.0030),
    ModelDef("SYNSTK02", "H1", "stock", "diag", 402, 95.0, 0.0035),
    ModelDef("SYNSTK03", "M15", "stock", "diag", 403, 310.0, 0.0030),
    ModelDef("SYNSTK04", "D1", "stock", "diag", 404, 42.0, 0.0040),
    ModelDef("SYNSTK05", "M30", "stock", "diag", 405, 220.0, 0.0032),
]

BY_NAME = {m.name: m for m in UNIVERSE}
