//! The broker core's own message types: what a client asks ([`Request`]) and what the broker
//! sends ([`Event`]). They mirror the Open API messages field for field where the sim uses them,
//! but carry no protobuf: [`crate::wire`] converts at the edge (serialization lives at the edge).

use crate::bars::{Period, Trendbar};

/// Connection id (assigned by [`crate::broker::Broker::connect`]).
pub type ConnId = u64;

/// An error code, sent as its name in `errorCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrorCode {
    // ProtoErrorCode (common)
    UnknownError,
    UnsupportedMessage,
    InvalidRequest,
    FrameTooLong,
    MarketClosed,
    BlockedPayloadType,
    // ProtoOAErrorCode
    OaAuthTokenExpired,
    AccountNotAuthorized,
    AlreadyLoggedIn,
    ChClientAuthFailure,
    ChClientNotAuthenticated,
    ChClientAlreadyAuthenticated,
    ChAccessTokenInvalid,
    ChCtidTraderAccountNotFound,
    RequestFrequencyExceeded,
    NotSubscribedToSpots,
    AlreadySubscribed,
    SymbolNotFound,
    IncorrectBoundaries,
    NotEnoughMoney,
    PositionNotFound,
    TradingBadVolume,
    TradingBadStops,
    TradingBadPrices,
    TradingNotAllowed,
    TradingDisabled,
    ServerIsUnderMaintenance,
    ConnectionsLimitExceeded,
}

impl ErrorCode {
    /// The name on the wire (the enum value's name in Spotware's definitions).
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            UnknownError => "UNKNOWN_ERROR",
            UnsupportedMessage => "UNSUPPORTED_MESSAGE",
            InvalidRequest => "INVALID_REQUEST",
            FrameTooLong => "FRAME_TOO_LONG",
            MarketClosed => "MARKET_CLOSED",
            BlockedPayloadType => "BLOCKED_PAYLOAD_TYPE",
            OaAuthTokenExpired => "OA_AUTH_TOKEN_EXPIRED",
            AccountNotAuthorized => "ACCOUNT_NOT_AUTHORIZED",
            AlreadyLoggedIn => "ALREADY_LOGGED_IN",
            ChClientAuthFailure => "CH_CLIENT_AUTH_FAILURE",
            ChClientNotAuthenticated => "CH_CLIENT_NOT_AUTHENTICATED",
            ChClientAlreadyAuthenticated => "CH_CLIENT_ALREADY_AUTHENTICATED",
            ChAccessTokenInvalid => "CH_ACCESS_TOKEN_INVALID",
            ChCtidTraderAccountNotFound => "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
            RequestFrequencyExceeded => "REQUEST_FREQUENCY_EXCEEDED",
            NotSubscribedToSpots => "NOT_SUBSCRIBED_TO_SPOTS",
            AlreadySubscribed => "ALREADY_SUBSCRIBED",
            SymbolNotFound => "SYMBOL_NOT_FOUND",
            IncorrectBoundaries => "INCORRECT_BOUNDARIES",
            NotEnoughMoney => "NOT_ENOUGH_MONEY",
            PositionNotFound => "POSITION_NOT_FOUND",
            TradingBadVolume => "TRADING_BAD_VOLUME",
            TradingBadStops => "TRADING_BAD_STOPS",
            TradingBadPrices => "TRADING_BAD_PRICES",
            TradingNotAllowed => "TRADING_NOT_ALLOWED",
            TradingDisabled => "TRADING_DISABLED",
            ServerIsUnderMaintenance => "SERVER_IS_UNDER_MAINTENANCE",
            ConnectionsLimitExceeded => "CONNECTIONS_LIMIT_EXCEEDED",
        }
    }

    /// Parses a name (for the `--fault reject:code=…` flag).
    pub fn from_name(s: &str) -> Option<Self> {
        use ErrorCode::*;
        [
            UnknownError,
            UnsupportedMessage,
            InvalidRequest,
            FrameTooLong,
            MarketClosed,
            BlockedPayloadType,
            OaAuthTokenExpired,
            AccountNotAuthorized,
            AlreadyLoggedIn,
            ChClientAuthFailure,
            ChClientNotAuthenticated,
            ChClientAlreadyAuthenticated,
            ChAccessTokenInvalid,
            ChCtidTraderAccountNotFound,
            RequestFrequencyExceeded,
            NotSubscribedToSpots,
            AlreadySubscribed,
            SymbolNotFound,
            IncorrectBoundaries,
            NotEnoughMoney,
            PositionNotFound,
            TradingBadVolume,
            TradingBadStops,
            TradingBadPrices,
            TradingNotAllowed,
            TradingDisabled,
            ServerIsUnderMaintenance,
            ConnectionsLimitExceeded,
        ]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// True for `ProtoErrorCode` (common) codes, which the sim reports in `ProtoErrorRes` (50)
    /// when they are about the frame itself rather than an Open API request.
    pub fn is_common(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            UnknownError
                | UnsupportedMessage
                | InvalidRequest
                | FrameTooLong
                | MarketClosed
                | BlockedPayloadType
        )
    }
}

/// Buy or sell (`ProtoOATradeSide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// BUY = 1.
    Buy = 1,
    /// SELL = 2.
    Sell = 2,
}

impl Side {
    /// +1 for buy, −1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Order types the sim executes (`ProtoOAOrderType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    /// MARKET = 1.
    Market = 1,
    /// LIMIT = 2 (refused: the sim executes market orders only).
    Limit = 2,
    /// STOP = 3 (refused).
    Stop = 3,
    /// MARKET_RANGE = 5.
    MarketRange = 5,
    /// STOP_LIMIT = 6 (refused).
    StopLimit = 6,
}

/// Token permission (`ProtoOAClientPermissionScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// SCOPE_VIEW = 0.
    View = 0,
    /// SCOPE_TRADE = 1.
    Trade = 1,
}

/// A new order request (`ProtoOANewOrderReq`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewOrder {
    /// Account.
    pub account_id: i64,
    /// Symbol id.
    pub symbol_id: i64,
    /// Order type.
    pub order_type: OrderType,
    /// Side.
    pub side: Side,
    /// Volume in cents.
    pub volume: i64,
    /// Absolute stop loss (refused on market orders, as cTrader does).
    pub stop_loss: Option<f64>,
    /// Absolute take profit (refused on market orders).
    pub take_profit: Option<f64>,
    /// Relative stop loss, 1e-5 units.
    pub relative_stop_loss: Option<i64>,
    /// Relative take profit, 1e-5 units.
    pub relative_take_profit: Option<i64>,
    /// Comment.
    pub comment: Option<String>,
    /// Base price for MARKET_RANGE.
    pub base_slippage_price: Option<f64>,
    /// Slippage bound in points for MARKET_RANGE.
    pub slippage_in_points: Option<i32>,
    /// Label.
    pub label: Option<String>,
    /// Existing position to modify (hedged: opposite side reduces it).
    pub position_id: Option<i64>,
    /// Client order id.
    pub client_order_id: Option<String>,
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Request {
    Heartbeat,
    ApplicationAuth {
        client_id: String,
        client_secret: String,
    },
    AccountAuth {
        account_id: i64,
        access_token: String,
    },
    AccountListByToken {
        access_token: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    Version,
    AssetList {
        account_id: i64,
    },
    SymbolsList {
        account_id: i64,
    },
    SymbolById {
        account_id: i64,
        symbol_ids: Vec<i64>,
    },
    SymbolsForConversion {
        account_id: i64,
        first_asset_id: i64,
        last_asset_id: i64,
    },
    Trader {
        account_id: i64,
    },
    Reconcile {
        account_id: i64,
    },
    SubscribeSpots {
        account_id: i64,
        symbol_ids: Vec<i64>,
        with_timestamp: bool,
    },
    UnsubscribeSpots {
        account_id: i64,
        symbol_ids: Vec<i64>,
    },
    SubscribeLiveTrendbar {
        account_id: i64,
        symbol_id: i64,
        period: i32,
    },
    UnsubscribeLiveTrendbar {
        account_id: i64,
        symbol_id: i64,
        period: i32,
    },
    GetTrendbars {
        account_id: i64,
        symbol_id: i64,
        period: i32,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        count: Option<u32>,
    },
    GetTickData {
        account_id: i64,
        symbol_id: i64,
        ask: bool,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
    NewOrder(NewOrder),
    ClosePosition {
        account_id: i64,
        position_id: i64,
        volume: i64,
    },
    DealList {
        account_id: i64,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        max_rows: Option<i32>,
    },
    UnrealizedPnl {
        account_id: i64,
    },
    ExpectedMargin {
        account_id: i64,
        symbol_id: i64,
        volumes: Vec<i64>,
    },
    OrderDetails {
        account_id: i64,
        order_id: i64,
    },
    OrderList {
        account_id: i64,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
    DealListByPositionId {
        account_id: i64,
        position_id: i64,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
    AccountLogout {
        account_id: i64,
    },
    /// A well-framed message of a payload type the sim does not serve.
    Unsupported {
        payload_type: u32,
        name: Option<&'static str>,
    },
    /// A known payload type whose payload did not decode, or an invalid field value.
    Malformed {
        reason: String,
    },
}

impl Request {
    /// True for the historical requests that share the 5 req/s limit.
    pub fn is_historical(&self) -> bool {
        matches!(
            self,
            Request::GetTrendbars { .. } | Request::GetTickData { .. } | Request::DealList { .. }
        )
    }

    /// The account a request names, if any.
    pub fn account_id(&self) -> Option<i64> {
        use Request::*;
        match self {
            AccountAuth { account_id, .. }
            | AssetList { account_id }
            | SymbolsList { account_id }
            | SymbolById { account_id, .. }
            | SymbolsForConversion { account_id, .. }
            | Trader { account_id }
            | Reconcile { account_id }
            | SubscribeSpots { account_id, .. }
            | UnsubscribeSpots { account_id, .. }
            | SubscribeLiveTrendbar { account_id, .. }
            | UnsubscribeLiveTrendbar { account_id, .. }
            | GetTrendbars { account_id, .. }
            | GetTickData { account_id, .. }
            | ClosePosition { account_id, .. }
            | DealList { account_id, .. }
            | ExpectedMargin { account_id, .. }
            | OrderDetails { account_id, .. }
            | OrderList { account_id, .. }
            | DealListByPositionId { account_id, .. }
            | AccountLogout { account_id }
            | UnrealizedPnl { account_id } => Some(*account_id),
            NewOrder(o) => Some(o.account_id),
            _ => None,
        }
    }

    /// A short name for logs (never includes secrets).
    pub fn kind(&self) -> &'static str {
        use Request::*;
        match self {
            Heartbeat => "Heartbeat",
            ApplicationAuth { .. } => "ApplicationAuthReq",
            AccountAuth { .. } => "AccountAuthReq",
            AccountListByToken { .. } => "GetAccountListByAccessTokenReq",
            RefreshToken { .. } => "RefreshTokenReq",
            Version => "VersionReq",
            AssetList { .. } => "AssetListReq",
            SymbolsList { .. } => "SymbolsListReq",
            SymbolById { .. } => "SymbolByIdReq",
            SymbolsForConversion { .. } => "SymbolsForConversionReq",
            Trader { .. } => "TraderReq",
            Reconcile { .. } => "ReconcileReq",
            SubscribeSpots { .. } => "SubscribeSpotsReq",
            UnsubscribeSpots { .. } => "UnsubscribeSpotsReq",
            SubscribeLiveTrendbar { .. } => "SubscribeLiveTrendbarReq",
            UnsubscribeLiveTrendbar { .. } => "UnsubscribeLiveTrendbarReq",
            GetTrendbars { .. } => "GetTrendbarsReq",
            GetTickData { .. } => "GetTickDataReq",
            NewOrder(_) => "NewOrderReq",
            ClosePosition { .. } => "ClosePositionReq",
            DealList { .. } => "DealListReq",
            UnrealizedPnl { .. } => "GetPositionUnrealizedPnLReq",
            ExpectedMargin { .. } => "ExpectedMarginReq",
            OrderDetails { .. } => "OrderDetailsReq",
            OrderList { .. } => "OrderListReq",
            DealListByPositionId { .. } => "DealListByPositionIdReq",
            AccountLogout { .. } => "AccountLogoutReq",
            Unsupported { .. } => "unsupported",
            Malformed { .. } => "malformed",
        }
    }
}

/// An account as listed for a token (`ProtoOACtidTraderAccount`).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountListItem {
    /// ctidTraderAccountId.
    pub account_id: i64,
    /// Live or demo.
    pub is_live: bool,
    /// Trader login.
    pub trader_login: i64,
    /// Broker short title.
    pub broker: String,
}

/// An asset (`ProtoOAAsset`).
#[derive(Clone, Debug, PartialEq)]
pub struct AssetInfo {
    /// Asset id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Digits.
    pub digits: i32,
}

/// A light symbol (`ProtoOALightSymbol`).
#[derive(Clone, Debug, PartialEq)]
pub struct LightSymbol {
    /// Symbol id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Base asset id.
    pub base_asset_id: i64,
    /// Quote asset id.
    pub quote_asset_id: i64,
    /// Description.
    pub description: String,
}

/// A full symbol (`ProtoOASymbol`).
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolInfo {
    /// Symbol id.
    pub id: i64,
    /// Digits.
    pub digits: i32,
    /// Pip position.
    pub pip_position: i32,
    /// Lot size (cents).
    pub lot_size: i64,
    /// Min volume (cents).
    pub min_volume: i64,
    /// Step volume (cents).
    pub step_volume: i64,
    /// Max volume (cents).
    pub max_volume: i64,
    /// Commission per lot per side, USD, × 10^8 (`preciseTradingCommissionRate`, USD_PER_LOT).
    pub precise_commission_rate: i64,
    /// Orders are taken now: the symbol has a price and data left. A symbol whose data is
    /// exhausted is listed with trading disabled and no trading hours (its orders get
    /// MARKET_CLOSED).
    pub tradable: bool,
    /// `tradingMode` set by a test hook or a `trading-mode` fault
    /// ([`crate::broker::Broker::set_trading_mode`]); `None`: ENABLED while `tradable`.
    pub trading_mode: Option<i32>,
    /// Trading hours (`schedule`, `scheduleTimeZone`, `holiday[]`), served while `tradable`.
    pub hours: crate::calendar::SymbolHours,
}

/// The account (`ProtoOATrader`).
#[derive(Clone, Debug, PartialEq)]
pub struct TraderInfo {
    /// Account id.
    pub account_id: i64,
    /// Balance (cents).
    pub balance: i64,
    /// Balance version.
    pub balance_version: i64,
    /// Deposit asset id.
    pub deposit_asset_id: i64,
    /// Leverage × 100.
    pub leverage_in_cents: u32,
    /// Trader login.
    pub trader_login: i64,
    /// Broker name.
    pub broker_name: String,
    /// Registration time, ms.
    pub registration_ms: i64,
    /// Money digits (2).
    pub money_digits: u32,
}

/// Trade data of a position or order (`ProtoOATradeData`).
#[derive(Clone, Debug, PartialEq)]
pub struct TradeData {
    /// Symbol id.
    pub symbol_id: i64,
    /// Volume (cents).
    pub volume: i64,
    /// Side.
    pub side: Side,
    /// Open/creation time, ms.
    pub open_ms: i64,
    /// Label.
    pub label: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Close time, ms (closed positions).
    pub close_ms: Option<i64>,
}

/// Position status (`ProtoOAPositionStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionStatus {
    /// POSITION_STATUS_OPEN = 1.
    Open = 1,
    /// POSITION_STATUS_CLOSED = 2.
    Closed = 2,
    /// POSITION_STATUS_CREATED = 3 (the position of an accepted, not yet filled order).
    Created = 3,
}

/// A position (`ProtoOAPosition`).
#[derive(Clone, Debug, PartialEq)]
pub struct PositionInfo {
    /// Position id.
    pub id: i64,
    /// Trade data.
    pub trade: TradeData,
    /// Status.
    pub status: PositionStatus,
    /// VWAP entry price (f64, rounded to digits).
    pub price: f64,
    /// Stop loss price.
    pub stop_loss: Option<f64>,
    /// Take profit price.
    pub take_profit: Option<f64>,
    /// Last update, ms.
    pub last_update_ms: i64,
    /// Unrealized (entry) commission, cents (negative).
    pub commission: i64,
    /// Margin rate (base→deposit).
    pub margin_rate: f64,
    /// Used margin, cents.
    pub used_margin: u64,
}

/// Order status (`ProtoOAOrderStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// ORDER_STATUS_ACCEPTED = 1.
    Accepted = 1,
    /// ORDER_STATUS_FILLED = 2.
    Filled = 2,
    /// ORDER_STATUS_CANCELLED = 5.
    Cancelled = 5,
}

/// An order (`ProtoOAOrder`).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderInfo {
    /// Order id.
    pub id: i64,
    /// Trade data.
    pub trade: TradeData,
    /// Type.
    pub order_type: OrderType,
    /// Status.
    pub status: OrderStatus,
    /// Execution price (filled orders).
    pub execution_price: Option<f64>,
    /// Executed volume (cents).
    pub executed_volume: i64,
    /// Last update, ms.
    pub last_update_ms: i64,
    /// MARKET_RANGE base price.
    pub base_slippage_price: Option<f64>,
    /// MARKET_RANGE slippage bound.
    pub slippage_in_points: Option<i64>,
    /// True for a closing order.
    pub closing_order: bool,
    /// Client order id.
    pub client_order_id: Option<String>,
    /// Linked position.
    pub position_id: i64,
    /// Relative SL (1e-5).
    pub relative_stop_loss: Option<i64>,
    /// Relative TP (1e-5).
    pub relative_take_profit: Option<i64>,
}

/// Closing detail of a deal (`ProtoOAClosePositionDetail`).
#[derive(Clone, Debug, PartialEq)]
pub struct CloseDetail {
    /// Entry price of the position.
    pub entry_price: f64,
    /// Gross profit, cents.
    pub gross_profit: i64,
    /// Swap, cents (always 0 in the sim).
    pub swap: i64,
    /// Commission realised, cents (negative).
    pub commission: i64,
    /// Balance after, cents.
    pub balance: i64,
    /// Quote→deposit rate.
    pub quote_to_deposit: f64,
    /// Closed volume, cents.
    pub closed_volume: i64,
    /// Balance version after.
    pub balance_version: i64,
}

/// A deal (`ProtoOADeal`).
#[derive(Clone, Debug, PartialEq)]
pub struct DealInfo {
    /// Deal id.
    pub id: i64,
    /// Order id.
    pub order_id: i64,
    /// Position id.
    pub position_id: i64,
    /// Volume sent (cents).
    pub volume: i64,
    /// Filled volume (cents).
    pub filled_volume: i64,
    /// Symbol id.
    pub symbol_id: i64,
    /// Created, ms.
    pub create_ms: i64,
    /// Executed, ms.
    pub execution_ms: i64,
    /// Execution price.
    pub execution_price: f64,
    /// Side.
    pub side: Side,
    /// Margin rate.
    pub margin_rate: f64,
    /// Commission of this deal, cents (negative).
    pub commission: i64,
    /// Closing detail (closing deals).
    pub close: Option<CloseDetail>,
}

/// Execution type (`ProtoOAExecutionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecType {
    /// ORDER_ACCEPTED = 2.
    Accepted = 2,
    /// ORDER_FILLED = 3.
    Filled = 3,
    /// ORDER_CANCELLED = 5.
    Cancelled = 5,
}

/// What the broker sends.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient: encoded right away
#[allow(missing_docs)]
pub enum Event {
    Heartbeat,
    /// `ProtoErrorRes` (50) when `common`, else `ProtoOAErrorRes` (2142).
    Error {
        code: ErrorCode,
        description: String,
        account_id: Option<i64>,
        common: bool,
    },
    /// `ProtoOAErrorRes` (2142) with `retryAfter` (seconds) or `maintenanceEndTimestamp` (Unix ms):
    /// the `blocked`, `maintenance` and `connections-limit` faults.
    Refused {
        code: ErrorCode,
        description: String,
        account_id: Option<i64>,
        retry_after_s: Option<u64>,
        maintenance_end_ms: Option<i64>,
    },
    ApplicationAuthRes,
    AccountAuthRes {
        account_id: i64,
    },
    AccountList {
        access_token: String,
        scope: Scope,
        accounts: Vec<AccountListItem>,
    },
    RefreshTokenRes {
        access_token: String,
        refresh_token: String,
        expires_in_s: i64,
    },
    VersionRes {
        version: String,
    },
    AssetList {
        account_id: i64,
        assets: Vec<AssetInfo>,
    },
    SymbolsList {
        account_id: i64,
        symbols: Vec<LightSymbol>,
    },
    SymbolById {
        account_id: i64,
        symbols: Vec<SymbolInfo>,
    },
    /// `ProtoOASymbolChangedEvent` (2120): these symbols' facts changed (their trading mode).
    SymbolChanged {
        account_id: i64,
        symbol_ids: Vec<i64>,
    },
    SymbolsForConversion {
        account_id: i64,
        symbols: Vec<LightSymbol>,
    },
    Trader {
        account_id: i64,
        trader: TraderInfo,
    },
    Reconcile {
        account_id: i64,
        positions: Vec<PositionInfo>,
        orders: Vec<OrderInfo>,
    },
    SubscribeSpotsRes {
        account_id: i64,
    },
    UnsubscribeSpotsRes {
        account_id: i64,
    },
    SubscribeLiveTrendbarRes {
        account_id: i64,
    },
    UnsubscribeLiveTrendbarRes {
        account_id: i64,
    },
    /// `ProtoOASpotEvent`: bid/ask only when changed since the last event on this subscription.
    Spot {
        account_id: i64,
        symbol_id: i64,
        bid: Option<u64>,
        ask: Option<u64>,
        trendbars: Vec<Trendbar>,
        timestamp_ms: Option<i64>,
        /// Not on the wire: the subscribed live-trendbar periods whose stream this event moves
        /// into a new period, each with the open time (Unix ms) of the bar that thereby closed
        /// (the forming bar this subscription was last sent for that period). The shell's
        /// timing hook (`--timing-out`) stamps them once the frame is written.
        closed_bars: Vec<(Period, i64)>,
    },
    Trendbars {
        account_id: i64,
        symbol_id: i64,
        period: Period,
        timestamp_ms: i64,
        bars: Vec<Trendbar>,
        has_more: bool,
    },
    /// Ticks newest first, delta-coded after the first (see [`crate::broker`]).
    TickData {
        account_id: i64,
        ticks: Vec<(i64, i64)>,
        has_more: bool,
    },
    Execution {
        account_id: i64,
        exec_type: ExecType,
        position: Option<PositionInfo>,
        order: Option<OrderInfo>,
        deal: Option<DealInfo>,
        error_code: Option<ErrorCode>,
    },
    OrderError {
        account_id: i64,
        code: ErrorCode,
        order_id: Option<i64>,
        position_id: Option<i64>,
        description: String,
    },
    DealList {
        account_id: i64,
        deals: Vec<DealInfo>,
        has_more: bool,
    },
    UnrealizedPnl {
        account_id: i64,
        items: Vec<(i64, i64, i64)>,
        money_digits: u32,
    },
    /// (volume, buy margin, sell margin) in cents.
    ExpectedMargin {
        account_id: i64,
        margins: Vec<(i64, i64, i64)>,
        money_digits: u32,
    },
    OrderDetails {
        account_id: i64,
        order: Box<OrderInfo>,
        deals: Vec<DealInfo>,
    },
    OrderList {
        account_id: i64,
        orders: Vec<OrderInfo>,
        has_more: bool,
    },
    DealListByPositionId {
        account_id: i64,
        deals: Vec<DealInfo>,
        has_more: bool,
    },
    AccountLogoutRes {
        account_id: i64,
    },
    TokenInvalidated {
        account_ids: Vec<i64>,
        reason: String,
    },
    ClientDisconnect {
        reason: String,
    },
}

impl Event {
    /// A short name for logs (never includes secrets).
    pub fn kind(&self) -> &'static str {
        use Event::*;
        match self {
            Heartbeat => "HeartbeatEvent",
            Error { common: true, .. } => "ErrorRes",
            Error { .. } => "OAErrorRes",
            Refused { .. } => "OAErrorRes",
            ApplicationAuthRes => "ApplicationAuthRes",
            AccountAuthRes { .. } => "AccountAuthRes",
            AccountList { .. } => "GetAccountListByAccessTokenRes",
            RefreshTokenRes { .. } => "RefreshTokenRes",
            VersionRes { .. } => "VersionRes",
            AssetList { .. } => "AssetListRes",
            SymbolsList { .. } => "SymbolsListRes",
            SymbolById { .. } => "SymbolByIdRes",
            SymbolChanged { .. } => "SymbolChangedEvent",
            SymbolsForConversion { .. } => "SymbolsForConversionRes",
            Trader { .. } => "TraderRes",
            Reconcile { .. } => "ReconcileRes",
            SubscribeSpotsRes { .. } => "SubscribeSpotsRes",
            UnsubscribeSpotsRes { .. } => "UnsubscribeSpotsRes",
            SubscribeLiveTrendbarRes { .. } => "SubscribeLiveTrendbarRes",
            UnsubscribeLiveTrendbarRes { .. } => "UnsubscribeLiveTrendbarRes",
            Spot { .. } => "SpotEvent",
            Trendbars { .. } => "GetTrendbarsRes",
            TickData { .. } => "GetTickDataRes",
            Execution { .. } => "ExecutionEvent",
            OrderError { .. } => "OrderErrorEvent",
            DealList { .. } => "DealListRes",
            UnrealizedPnl { .. } => "GetPositionUnrealizedPnLRes",
            ExpectedMargin { .. } => "ExpectedMarginRes",
            OrderDetails { .. } => "OrderDetailsRes",
            OrderList { .. } => "OrderListRes",
            DealListByPositionId { .. } => "DealListByPositionIdRes",
            AccountLogoutRes { .. } => "AccountLogoutRes",
            TokenInvalidated { .. } => "AccountsTokenInvalidatedEvent",
            ClientDisconnect { .. } => "ClientDisconnectEvent",
        }
    }
}
