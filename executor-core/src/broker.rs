//! The values exchanged with a broker, wire-free: quotes, bars, positions, orders, their
//! outcomes and lookups. The broker interface that moves them (`Broker`, async) is the shell's
//! (`oracle_executor::broker`); only its implementations know the wire protocol.

/// Bid/ask now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quote {
    /// Bid.
    pub bid: f64,
    /// Ask.
    pub ask: f64,
}

/// A closed bid bar: the system's one `Bar` (`oracle_core::Bar`: open time in Unix seconds,
/// bid prices, the tick volume as f64). A broker's tick volume is a whole number, exact in f64
/// below 2^53; it goes out on the IPC `BAR` line as that integer ([`tick_volume`]).
pub use oracle_core::Bar;

/// The tick volume of `bar` as the IPC `BAR` line carries it: the whole number (a fraction is
/// dropped, a negative or NaN volume is 0).
pub fn tick_volume(bar: &Bar) -> u64 {
    bar.volume as u64
}

/// An open position at the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerPosition {
    /// Position id.
    pub position_id: u64,
    /// Symbol.
    pub symbol: String,
    /// Label given at open (the model key for ours).
    pub label: String,
    /// Client order id of the opening order, when the broker echoes it.
    pub client_order_id: String,
    /// Long.
    pub buy: bool,
    /// Volume (cents).
    pub volume: i64,
    /// Entry price.
    pub price: f64,
}

/// A market order (MARKET_RANGE).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderReq {
    /// Symbol.
    pub symbol: String,
    /// Client order id (≤ 50 chars).
    pub client_order_id: String,
    /// Label (model key).
    pub label: String,
    /// Buy / sell.
    pub buy: bool,
    /// Volume (cents).
    pub volume: i64,
    /// `baseSlippagePrice`.
    pub base_price: f64,
    /// `slippageInPoints`.
    pub slippage_points: u32,
}

/// Outcome of an order request.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderResult {
    /// Filled.
    Filled {
        /// Position id.
        position_id: u64,
        /// Fill price.
        price: f64,
        /// Filled volume.
        volume: i64,
    },
    /// Refused by the broker (error code, text).
    Rejected {
        /// Error code.
        code: String,
        /// Text.
        msg: String,
    },
    /// No answer (timeout, disconnect): the order may or may not have executed.
    Unknown,
}

/// What the engine knows of an order whose outcome is unknown (from its journaled intent).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderLookup {
    /// Client order id.
    pub client_order_id: String,
    /// Label (model key).
    pub label: String,
    /// Symbol.
    pub symbol: String,
    /// Buy side.
    pub buy: bool,
    /// Volume (cents).
    pub volume: i64,
    /// For a close: the position it closes.
    pub closes: Option<u64>,
    /// When the intent was written (Unix seconds).
    pub since: i64,
}

/// A broker request failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);
