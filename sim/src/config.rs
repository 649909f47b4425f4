//! Broker configuration: credentials, accounts, timing, limits, replay speed and faults.

use crate::msg::{ErrorCode, Scope};

/// Replay speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as the clients read: the next tick is produced only when every subscribed
    /// connection has drained its queue (the client drives the pace; also called "step").
    Fast,
    /// Market time runs at `factor` × wall time (1.0 = real time).
    Times(f64),
    /// This many bars per second of the coarsest source period (so every stream publishes at
    /// least that many bars per second).
    BarsPerSecond(f64),
}

impl Speed {
    /// Parses `fast` (or `step`), `realtime`, `<N>x` (market time N × wall time) or a bare
    /// number `<N>` (N bars per second per stream).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let positive = |v: &str| -> Result<f64, String> {
            let n: f64 = v.parse().map_err(|_| {
                format!("speed `{s}`: expected fast, realtime, <N>x or <N> (bars/s)")
            })?;
            if n.is_finite() && n > 0.0 {
                Ok(n)
            } else {
                Err(format!("speed `{s}` must be positive"))
            }
        };
        match t.as_str() {
            "fast" | "step" => Ok(Speed::Fast),
            "realtime" | "real-time" => Ok(Speed::Times(1.0)),
            _ => match t.strip_suffix('x') {
                Some(n) => positive(n).map(Speed::Times),
                None => positive(&t).map(Speed::BarsPerSecond),
            },
        }
    }
}

/// An Open API application (client id + secret).
#[derive(Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret (never logged).
    pub client_secret: String,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("client_id", &"<redacted>")
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// An access token with its refresh token, scope and granted accounts.
#[derive(Clone, PartialEq)]
pub struct TokenConfig {
    /// Access token (never logged).
    pub access_token: String,
    /// Refresh token, valid once (never logged).
    pub refresh_token: String,
    /// Permission scope.
    pub scope: Scope,
    /// Accounts the token grants.
    pub accounts: Vec<i64>,
    /// Seconds from broker start until the access token expires (negative: already expired).
    pub expires_in_s: i64,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("scope", &self.scope)
            .field("accounts", &self.accounts)
            .field("expires_in_s", &self.expires_in_s)
            .finish()
    }
}

/// A trading account.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountConfig {
    /// ctidTraderAccountId.
    pub id: i64,
    /// Trader login.
    pub login: i64,
    /// Starting balance in cents (moneyDigits 2, USD).
    pub balance_cents: i64,
    /// Leverage (100 = 1:100).
    pub leverage: u32,
    /// Live (true) or demo.
    pub is_live: bool,
}

impl AccountConfig {
    /// Parses `ID:BALANCE[:LEVERAGE[:live]]` (balance in deposit currency, e.g. `1001:100000:100`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split(':').collect();
        let bad = || format!("account `{s}`: expected ID:BALANCE[:LEVERAGE[:live|demo]]");
        if f.len() < 2 || f.len() > 4 {
            return Err(bad());
        }
        let id: i64 = f[0].parse().map_err(|_| bad())?;
        let bal: f64 = f[1].parse().map_err(|_| bad())?;
        if id <= 0 || !(bal.is_finite() && bal >= 0.0) {
            return Err(bad());
        }
        let leverage = match f.get(2) {
            Some(l) => l.parse().ok().filter(|l: &u32| *l > 0).ok_or_else(bad)?,
            None => 100,
        };
        let is_live = match f.get(3) {
            None | Some(&"demo") => false,
            Some(&"live") => true,
            _ => return Err(bad()),
        };
        Ok(AccountConfig {
            id,
            login: 7_000_000 + id,
            balance_cents: (bal * 100.0).round() as i64,
            leverage,
            is_live,
        })
    }
}

/// One injected fault (`--fault`). Counts are of frames the server sent on one connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `drop:after=N[,times=K]` — close the connection abruptly right after its N-th server frame.
    DropAfter {
        /// Frames.
        after: u64,
        /// Fire at most K times in the sim's life (None: every connection).
        times: Option<u64>,
    },
    /// `drop:random=P[,times=K]` — after each server frame, close with probability P (seeded).
    DropRandom {
        /// Probability per frame.
        p: f64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `reject:code=CODE[,every=N][,symbol=SYM][,times=K][,via=event|error]` — refuse new orders
    /// (every N-th matching one; all by default) with CODE (NOT_ENOUGH_MONEY, MARKET_CLOSED,
    /// TRADING_BAD_VOLUME, …), as an OrderErrorEvent (default) or an OAErrorRes.
    Reject {
        /// The code.
        code: ErrorCode,
        /// Every N-th matching order.
        every: u64,
        /// Only this symbol.
        symbol: Option<String>,
        /// Fire at most K times.
        times: Option<u64>,
        /// Send as ProtoOAErrorRes instead of ProtoOAOrderErrorEvent.
        via_error_res: bool,
    },
    /// `delay:ms=D` — delay every response (a frame answering a request) by D ms.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// `no-heartbeat` — the server never sends heartbeats.
    NoHeartbeat,
    /// `silence:after=N[,times=K]` — after N frames the server sends nothing more on the
    /// connection (no responses, spots or heartbeats) but keeps it open: a dead stream.
    Silence {
        /// Frames.
        after: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `garbage:after=N[,times=K]` — after N frames, send a well-length-prefixed frame whose body
    /// is not a ProtoMessage.
    Garbage {
        /// Frames.
        after: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `oversized:after=N[,len=BYTES][,times=K]` — after N frames, send a frame whose length
    /// prefix is BYTES (default 16 MiB + 1, over any sane cap) followed by that many zero bytes.
    Oversized {
        /// Frames.
        after: u64,
        /// Announced (and sent) body length.
        len: u32,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `lose-exec[:every=N][,times=K][,only=filled]` — execute every N-th order (new or close)
    /// normally but never send its ExecutionEvents (or only its ORDER_FILLED), so the client
    /// must reconcile.
    LoseExec {
        /// Every N-th order.
        every: u64,
        /// Fire at most K times.
        times: Option<u64>,
        /// Lose only the ORDER_FILLED event.
        filled_only: bool,
    },
    /// `spread:symbol=S,points=P[,after=N]` — from the (N+1)-th market tick on (N = 0 by
    /// default: from the start) symbol S is quoted with a spread of P points.
    Spread {
        /// Symbol name.
        symbol: String,
        /// Spread in points.
        points: i64,
        /// Ticks before it applies.
        after: u64,
    },
    /// `delta-high-bug` — historical trendbars with deltaClose = 0 come back with deltaHigh = 0
    /// (the known 2026 server bug), so clients can prove they cope.
    DeltaHighBug,
    /// `blocked:retry-after=S[,kind=REQ][,every=N][,times=K]` — refuse every N-th request (of
    /// payload kind REQ, e.g. `NewOrderReq`; any request but auth by default) with
    /// `ProtoOAErrorRes BLOCKED_PAYLOAD_TYPE` and `retryAfter` S seconds; it is not executed.
    Blocked {
        /// The request kind (`Request::kind`), None: any request but auth.
        kind: Option<String>,
        /// retryAfter, seconds.
        retry_after_s: u64,
        /// Every N-th matching request.
        every: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `maintenance:after=S,for=D` — from S seconds after the simulator started, for D seconds
    /// (wall clock): every open connection gets `ProtoOAClientDisconnectEvent` and is closed,
    /// and every request meanwhile gets `SERVER_IS_UNDER_MAINTENANCE` with its
    /// `maintenanceEndTimestamp`, then the connection is closed.
    Maintenance {
        /// Start, seconds after the simulator started.
        after_s: u64,
        /// Length, seconds.
        for_s: u64,
    },
    /// `client-disconnect:after=N[,times=K]` — after N server frames on a connection, send
    /// `ProtoOAClientDisconnectEvent` and close it.
    ClientDisconnect {
        /// Frames.
        after: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `connections-limit:max=N[,times=K]` — an `ApplicationAuthReq` while N other connections
    /// are application-authorized gets `CONNECTIONS_LIMIT_EXCEEDED` and the connection is closed.
    ConnectionsLimit {
        /// Connections allowed besides the new one.
        max: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
    /// `trading-mode:symbol=S,mode=M[,after=N]` — from the (N+1)-th market tick on (N = 0 by
    /// default) symbol S has `tradingMode` M (`enabled`, `close-only`, `disabled`,
    /// `disabled-with-pendings`), announced with a `SymbolChangedEvent`; new orders on a symbol
    /// not enabled get TRADING_DISABLED, closes too unless it is close-only.
    TradingMode {
        /// Symbol name (the broker's).
        symbol: String,
        /// `ProtoOATradingMode` value.
        mode: i32,
        /// Ticks before it applies.
        after: u64,
    },
    /// `no-answer:kind=REQ[,every=N][,times=K]` — every N-th request of kind REQ (e.g.
    /// `GetTrendbarsReq`, `NewOrderReq`) is executed but nothing answering it is ever sent.
    NoAnswer {
        /// The request kind (`Request::kind`).
        kind: String,
        /// Every N-th matching request.
        every: u64,
        /// Fire at most K times.
        times: Option<u64>,
    },
}

impl Fault {
    /// Parses one `--fault` value: `NAME[:key=value[,key=value]…]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, args) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), a.trim()),
            None => (s.trim(), ""),
        };
        let mut kv: Vec<(String, String)> = Vec::new();
        for part in args.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault `{s}`: `{part}` is not key=value"))?;
            kv.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let get = |k: &str| kv.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        let num = |k: &str| -> Result<Option<u64>, String> {
            get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("fault `{s}`: {k}={v} is not a count"))
                })
                .transpose()
        };
        let known = |keys: &[&str]| -> Result<(), String> {
            match kv.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
                Some((k, _)) => Err(format!(
                    "fault `{s}`: unknown key `{k}` (expected {})",
                    keys.join(", ")
                )),
                None => Ok(()),
            }
        };
        let need = |k: &str| -> Result<u64, String> {
            num(k)?.ok_or_else(|| format!("fault `{s}`: needs {k}=N"))
        };
        let times = num("times")?;
        let f = match name.to_ascii_lowercase().as_str() {
            "drop" => {
                known(&["after", "random", "times"])?;
                if let Some(p) = get("random") {
                    let p: f64 = p
                        .parse()
                        .map_err(|_| format!("fault `{s}`: random=P needs 0 < P ≤ 1"))?;
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(format!("fault `{s}`: random=P needs 0 < P ≤ 1"));
                    }
                    Fault::DropRandom { p, times }
                } else {
                    Fault::DropAfter {
                        after: need("after")?,
                        times,
                    }
                }
            }
            "reject" => {
                known(&["code", "every", "symbol", "times", "via"])?;
                let code_s = get("code").ok_or_else(|| format!("fault `{s}`: needs code=CODE"))?;
                let code = ErrorCode::from_name(code_s)
                    .ok_or_else(|| format!("fault `{s}`: unknown code {code_s}"))?;
                let via_error_res = match get("via") {
                    None | Some("event") | Some("order-error") => false,
                    Some("error") | Some("error-res") => true,
                    Some(v) => {
                        return Err(format!("fault `{s}`: via={v} (expected event or error)"));
                    }
                };
                Fault::Reject {
                    code,
                    every: num("every")?.unwrap_or(1).max(1),
                    symbol: get("symbol").map(str::to_ascii_uppercase),
                    times,
                    via_error_res,
                }
            }
            "delay" => {
                known(&["ms"])?;
                Fault::Delay { ms: need("ms")? }
            }
            "no-heartbeat" | "no-heartbeats" => {
                known(&[])?;
                Fault::NoHeartbeat
            }
            "silence" => {
                known(&["after", "times"])?;
                Fault::Silence {
                    after: need("after")?,
                    times,
                }
            }
            "garbage" => {
                known(&["after", "times"])?;
                Fault::Garbage {
                    after: need("after")?,
                    times,
                }
            }
            "oversized" => {
                known(&["after", "len", "times"])?;
                let len = match num("len")? {
                    Some(l) => {
                        u32::try_from(l).map_err(|_| format!("fault `{s}`: len too large"))?
                    }
                    None => 16 * 1024 * 1024 + 1,
                };
                Fault::Oversized {
                    after: need("after")?,
                    len,
                    times,
                }
            }
            "lose-exec" => {
                known(&["every", "times", "only"])?;
                let filled_only = match get("only") {
                    None | Some("all") => false,
                    Some("filled") => true,
                    Some(v) => return Err(format!("fault `{s}`: only={v} (expected filled)")),
                };
                Fault::LoseExec {
                    every: num("every")?.unwrap_or(1).max(1),
                    times,
                    filled_only,
                }
            }
            "delta-high-bug" => {
                known(&[])?;
                Fault::DeltaHighBug
            }
            "spread" => {
                known(&["symbol", "points", "after"])?;
                let symbol = get("symbol")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("fault `{s}`: needs symbol=S"))?
                    .to_ascii_uppercase();
                let points = need("points")? as i64;
                Fault::Spread {
                    symbol,
                    points,
                    after: num("after")?.unwrap_or(0),
                }
            }
            "trading-mode" => {
                known(&["symbol", "mode", "after"])?;
                let symbol = get("symbol")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("fault `{s}`: needs symbol=S"))?
                    .to_string();
                let mode = match get("mode").map(str::to_ascii_lowercase).as_deref() {
                    Some("enabled") => 0,
                    Some("disabled") => 1,
                    Some("disabled-with-pendings") => 2,
                    Some("close-only") => 3,
                    _ => {
                        return Err(format!(
                            "fault `{s}`: needs mode=enabled|close-only|disabled|disabled-with-pendings"
                        ));
                    }
                };
                Fault::TradingMode {
                    symbol,
                    mode,
                    after: num("after")?.unwrap_or(0),
                }
            }
            "blocked" => {
                known(&["retry-after", "kind", "every", "times"])?;
                Fault::Blocked {
                    kind: get("kind").filter(|v| !v.is_empty()).map(str::to_string),
                    retry_after_s: need("retry-after")?,
                    every: num("every")?.unwrap_or(1).max(1),
                    times,
                }
            }
            "maintenance" => {
                known(&["after", "for"])?;
                let for_s = need("for")?;
                if for_s == 0 {
                    return Err(format!("fault `{s}`: for=D needs D > 0 seconds"));
                }
                Fault::Maintenance {
                    after_s: need("after")?,
                    for_s,
                }
            }
            "client-disconnect" => {
                known(&["after", "times"])?;
                Fault::ClientDisconnect {
                    after: need("after")?,
                    times,
                }
            }
            "connections-limit" => {
                known(&["max", "times"])?;
                Fault::ConnectionsLimit {
                    max: need("max")?,
                    times,
                }
            }
            "no-answer" => {
                known(&["kind", "every", "times"])?;
                let kind = get("kind")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("fault `{s}`: needs kind=REQ (e.g. GetTrendbarsReq)"))?
                    .to_string();
                Fault::NoAnswer {
                    kind,
                    every: num("every")?.unwrap_or(1).max(1),
                    times,
                }
            }
            other => {
                return Err(format!(
                    "unknown fault `{other}` (expected drop, reject, delay, no-heartbeat, silence, garbage, \
                     oversized, lose-exec, spread, delta-high-bug, blocked, maintenance, \
                     client-disconnect, connections-limit, no-answer)"
                ));
            }
        };
        Ok(f)
    }
}

/// Everything the broker core needs besides the market.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// RNG seed (slippage jitter, random drops, generated tokens, garbage bytes).
    pub seed: u64,
    /// Applications.
    pub apps: Vec<AppConfig>,
    /// Tokens.
    pub tokens: Vec<TokenConfig>,
    /// Accounts.
    pub accounts: Vec<AccountConfig>,
    /// Lifetime of access tokens issued by RefreshTokenReq, seconds (cTrader: 2,628,000).
    pub token_ttl_s: i64,
    /// The server sends a heartbeat when it has sent nothing for this long.
    pub heartbeat_interval_ms: i64,
    /// A client that sent nothing for this long is disconnected.
    pub idle_timeout_ms: i64,
    /// Requests per second per connection.
    pub rate_limit: usize,
    /// Historical requests per second per connection.
    pub history_rate_limit: usize,
    /// Most trendbars in one GetTrendbarsRes (then `hasMore`).
    pub max_bars_per_response: usize,
    /// Most ticks in one GetTickDataRes.
    pub max_ticks_per_response: usize,
    /// Most deals in one DealListRes when `maxRows` is absent.
    pub max_deals_per_response: usize,
    /// Replay speed.
    pub speed: Speed,
    /// Extra random adverse slippage per fill, uniform in 0..=N points (seeded).
    pub slippage_random_points: i64,
    /// Fast speed only: after a tick that closes a bar of a period some connection subscribed
    /// to (live trendbars), hold the replay this long (wall ms), so the clients can act on the
    /// closed bar at the next bar's opening price. 0: no pause.
    pub bar_pause_ms: u64,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Trading hours served and enforced (`--calendar`; default: open around the clock).
    pub calendar: crate::calendar::CalendarMode,
    /// The broker's names of symbols whose bar files carry the model's name
    /// (`--broker-symbol US500=US500.cash`, FTMO-style): model name → broker name. The sim
    /// lists, quotes and matches faults by the broker's name.
    pub broker_names: std::collections::BTreeMap<String, String>,
    /// Whole-day holidays every symbol observes under `--calendar realistic`, besides Christmas
    /// Day: (name, date as days since 1970-01-01), each in the symbol's own zone, not recurring
    /// (`--holiday`). Ignored when always open.
    pub holidays: Vec<(String, i64)>,
    /// The accounts' deposit currency (`--deposit-currency`, three capital letters; default
    /// `USD`): `TraderRes.depositAssetId` names it, and money (balances, P&L, margins,
    /// commissions) is in it. Another currency than USD needs a symbol pairing it with USD
    /// (EURUSD for EUR): the symbols' USD money is converted at its price at the replay's start.
    pub deposit_currency: String,
}

/// Parses `--deposit-currency`: three capital letters (`EUR`).
pub fn parse_deposit_currency(s: &str) -> Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "--deposit-currency {s:?}: expected a currency code of three capital letters, e.g. EUR"
        ))
    }
}

/// Default client id of the sim's application.
pub const DEFAULT_CLIENT_ID: &str = "oracle-sim-client";
/// Default client secret.
pub const DEFAULT_CLIENT_SECRET: &str = "oracle-sim-secret";
/// Default access token.
pub const DEFAULT_ACCESS_TOKEN: &str = "oracle-sim-access-token";
/// Default refresh token.
pub const DEFAULT_REFRESH_TOKEN: &str = "oracle-sim-refresh-token";
/// Default account id.
pub const DEFAULT_ACCOUNT_ID: i64 = 1001;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            seed: 0,
            apps: vec![AppConfig {
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: DEFAULT_CLIENT_SECRET.into(),
            }],
            tokens: vec![TokenConfig {
                access_token: DEFAULT_ACCESS_TOKEN.into(),
                refresh_token: DEFAULT_REFRESH_TOKEN.into(),
                scope: Scope::Trade,
                accounts: vec![DEFAULT_ACCOUNT_ID],
                expires_in_s: 2_628_000,
            }],
            accounts: vec![AccountConfig {
                id: DEFAULT_ACCOUNT_ID,
                login: 7_001_001,
                balance_cents: 10_000_000,
                leverage: 100,
                is_live: false,
            }],
            token_ttl_s: 2_628_000,
            heartbeat_interval_ms: 10_000,
            idle_timeout_ms: 30_000,
            rate_limit: 50,
            history_rate_limit: 5,
            max_bars_per_response: 5_000,
            max_ticks_per_response: 5_000,
            max_deals_per_response: 1_000,
            speed: Speed::Fast,
            slippage_random_points: 0,
            bar_pause_ms: 0,
            faults: Vec::new(),
            calendar: crate::calendar::CalendarMode::AlwaysOpen,
            broker_names: std::collections::BTreeMap::new(),
            holidays: Vec::new(),
            deposit_currency: "USD".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!(
            Fault::parse("drop:after=20").unwrap(),
            Fault::DropAfter {
                after: 20,
                times: None
            }
        );
        assert_eq!(
            Fault::parse("drop:random=0.01,times=2").unwrap(),
            Fault::DropRandom {
                p: 0.01,
                times: Some(2)
            }
        );
        assert_eq!(
            Fault::parse("reject:code=NOT_ENOUGH_MONEY,every=3,symbol=eurusd").unwrap(),
            Fault::Reject {
                code: ErrorCode::NotEnoughMoney,
                every: 3,
                symbol: Some("EURUSD".into()),
                times: None,
                via_error_res: false
            }
        );
        assert_eq!(
            Fault::parse("delay:ms=250").unwrap(),
            Fault::Delay { ms: 250 }
        );
        assert_eq!(Fault::parse("no-heartbeat").unwrap(), Fault::NoHeartbeat);
        assert_eq!(
            Fault::parse("spread:symbol=EURUSD,points=80,after=3").unwrap(),
            Fault::Spread {
                symbol: "EURUSD".into(),
                points: 80,
                after: 3
            }
        );
        assert!(Fault::parse("spread:points=80").is_err());
        assert!(Fault::parse("spread:symbol=EURUSD").is_err());
        assert_eq!(
            Fault::parse("lose-exec:only=filled").unwrap(),
            Fault::LoseExec {
                every: 1,
                times: None,
                filled_only: true
            }
        );
        assert_eq!(
            Fault::parse("oversized:after=3").unwrap(),
            Fault::Oversized {
                after: 3,
                len: 16 * 1024 * 1024 + 1,
                times: None
            }
        );
        assert!(Fault::parse("drop").is_err());
        assert!(Fault::parse("reject:code=NOPE").is_err());
        assert!(Fault::parse("drop:after=1,bogus=2").is_err());
        assert!(Fault::parse("explode").is_err());
    }

    #[test]
    fn trading_mode_fault_parses_the_mode_and_keeps_the_brokers_symbol_name() {
        assert_eq!(
            Fault::parse("trading-mode:symbol=US500.cash,mode=close-only,after=40").unwrap(),
            Fault::TradingMode {
                symbol: "US500.cash".into(),
                mode: 3,
                after: 40
            }
        );
        for (m, v) in [
            ("enabled", 0),
            ("disabled", 1),
            ("disabled-with-pendings", 2),
        ] {
            let f = Fault::parse(&format!("trading-mode:symbol=EURUSD,mode={m}")).unwrap();
            assert!(
                matches!(f, Fault::TradingMode { mode, after: 0, .. } if mode == v),
                "{m}"
            );
        }
        let e = Fault::parse("trading-mode:symbol=EURUSD,mode=sleepy").unwrap_err();
        assert!(e.contains("close-only"), "{e}");
        assert!(Fault::parse("trading-mode:mode=close-only").is_err());
    }

    #[test]
    fn speeds_and_accounts_parse() {
        assert_eq!(Speed::parse("fast"), Ok(Speed::Fast));
        assert_eq!(Speed::parse("realtime"), Ok(Speed::Times(1.0)));
        assert_eq!(Speed::parse("60x"), Ok(Speed::Times(60.0)));
        assert_eq!(Speed::parse("4"), Ok(Speed::BarsPerSecond(4.0)));
        assert!(Speed::parse("0x").is_err());
        let a = AccountConfig::parse("1002:50000.5:30:live").unwrap();
        assert_eq!(
            (a.id, a.balance_cents, a.leverage, a.is_live),
            (1002, 5_000_050, 30, true)
        );
        assert!(AccountConfig::parse("x:1").is_err());
    }
}
