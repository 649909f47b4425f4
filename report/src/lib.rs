//! The tearsheet: a backtest (`oracle_model::backtest`) as one self-contained HTML page — inline
//! CSS and SVG, no script, no external resource — that a trader recognises: the account equity
//! curve, the drawdown under the running peak (underwater), the statistics of
//! `docs/backtest.md`, monthly returns and costs, and the trade list, each with its unit and
//! currency (`docs/report.md` says what each figure means).
//!
//! Every figure comes from `oracle_model` (the statistics, the drawdown series, the months, the
//! costs): this crate only lays them out. `oracle backtest --html` writes [`page`]; `oracle demo`
//! puts a [`section`] per model in its report, with [`stats_table`] and the account's
//! [`equity_chart`] and [`underwater_chart`].

#![forbid(unsafe_code)]

mod chart;
mod tearsheet;

pub use chart::{Curve, equity_chart, underwater_chart};
pub use tearsheet::{
    STYLE, esc, months_table, page, returns_grid, section, stats_table, trades_table,
};
