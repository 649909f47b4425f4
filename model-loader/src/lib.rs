//! The model loader: opens an atomic model zip (`SYM_TF.zip`), validates its metadata (the zip
//! comment, `docs/contract.md` §9) and member hashes, reads the portable members
//! (`SYM_TF_hmm.json`, and `SYM_TF_policy.weights`, the plain weights written from the ONNX policy
//! when the model was packed: no protobuf is parsed at load) and builds the core's fixed-size
//! [`oracle_core::Model`]. A zip without the weights member is refused with the
//! [`pack_weights_command`] that adds it.
//!
//! Every refusal names the zip file and the field or member at fault ([`LoadError`]). A folder
//! of zips loads with [`load_dir`]: a bad zip is reported by name and the others still load.
//! A zip declaring features the twin does not implement is refused, naming them (contract §9
//! "Declared features": the one set is [`FEATURE_SET`] v[`FEATURE_SET_VERSION`], and no
//! declaration means it); a seed-format zip is refused with the [`pack_command`] that packs it.
//!
//! Also here, because every tool shares them: the bar CSV reader ([`BarReader`], bad lines by
//! line number), [`replay`], the contract §8 replay trace behind `oracle replay`, and
//! [`backtest`], the statistics and trade list behind `oracle backtest` (docs/backtest.md).
//!
//! - **Architecture Invariant:** the loader hands the core plain fixed-size parameters; the core
//!   never sees JSON, zip or ONNX.

mod backtest;
mod bars;
mod dir;
mod error;
mod features;
mod json;
mod load;
mod replay;
mod weights;

pub use backtest::{
    Backtest, BacktestError, BarRecord, Costs, DEFAULT_CAPITAL, Ledger, Month, OpenTrade, Stats,
    TRADES_HEADER, Trade, backtest, bars_per_year, drawdowns, fixed, months, position_name,
    statistics, summary_text, trades_csv,
};
pub use bars::{
    BAR_HEADER, BarLine, BarReader, CsvError, format_time, parse_decimal, parse_line, parse_time,
    quote, write_time,
};
pub use dir::{FolderLoad, load_dir};
pub use error::{LoadError, LoadErrorKind};
pub use features::{
    FEATURE_SET, FEATURE_SET_VERSION, HMM_FEATURES, MARKET_FEATURES, POSITION_FEATURES,
    pack_command, v1_layout,
};
pub use load::{
    CovarianceType, FORMAT_VERSION, LoadLimits, LoadedModel, MAX_MEMBER_BYTES, MAX_ZIP_BYTES,
    Metadata, SUPPORTED_TIMEFRAMES, load_model, load_model_bytes, load_model_bytes_limited,
    load_model_limited, parse_metadata,
};
pub use replay::{ReplayError, ReplaySummary, TRACE_HEADER, replay};
pub use weights::{
    DenseLayer, PolicyWeights, WEIGHTS_DTYPE_F32_LE, WEIGHTS_MAGIC, WEIGHTS_SUFFIX,
    WEIGHTS_VERSION, WeightsError, decode_weights, encode_weights, pack_weights_command,
};
