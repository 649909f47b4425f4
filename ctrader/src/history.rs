//! The broker's own bars of one symbol and period over a span, for `oracle history`: what a model
//! is trained on is then what it will trade on.
//!
//! Over the existing [`crate::driver`] and [`crate::session`] (no second session): the session
//! paces `GetTrendbarsReq` at [`SessionConfig::max_history_per_window`] (5) a second and re-queues
//! one the server refuses for its rate; [`session_config`] adds a tenth of a second to the window
//! so that network jitter never lets the server count six in its own second.
//!
//! - **Symbol**: the broker's name, exactly (`SymbolsListReq`); an unknown one is refused with the
//!   close matches of the broker's list ([`close_matches`]). Its `digits` (`SymbolByIdReq`) are
//!   the decimals written.
//! - **Requests**: the span is cut into windows no longer than older servers accepted per period
//!   ([`max_span_secs`]: M1–M5 35 days, M10–H1 35 weeks, H4–W1 a year; [`windows`]). A response
//!   with `hasMore` holds the newest bars of its range (`count` counts back from `toTimestamp`),
//!   so the rest of the window is asked for below the oldest bar received.
//! - **Closed bars only**: a bar is written when it opened at or after `from` and ended at or
//!   before both `to` and the server's time (`GetTrendbarsRes.timestamp`; without it, the caller's
//!   `now`): the bar forming at `to` or at the server's clock is left out ([`closed_in_span`]).
//!   Bars listed twice count once; the output is in open-time order.
//! - **Output**: prices with the symbol's digits ([`format_price`]; the caller writes the bar-file
//!   grammar of `docs/contract.md` §1 with the workspace's one calendar, `oracle_ipc::time`), to a
//!   temporary file in the target's folder, fsynced and renamed over the target
//!   ([`write_atomic`]): a reader sees the old file or the whole new one.
//! - **Tokens**: [`session_config`] gives the session no refresh token: this command never spends
//!   it (a refresh kills the access token a running executor is using); an expired access token
//!   is an error that names `oracle auth --refresh`.

use std::path::Path;
use std::time::Duration;

use crate::creds::Credentials;
use crate::driver::{Client, ClientConfig, Outcome, connect};
use crate::proto::{
    Payload, ProtoOaGetTrendbarsReq, ProtoOaSymbolByIdReq, ProtoOaSymbolsListReq,
    ProtoOaTrendbarPeriod,
};
use crate::session::{Event, SessionConfig};
use crate::units::{Bar, decode_trendbar};

/// Why a download failed: one line each, naming the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The broker has no symbol of that name.
    #[error("symbol {name:?} is not in the broker's symbol list{}", suggest(.close))]
    UnknownSymbol {
        /// The name asked for.
        name: String,
        /// The broker's names closest to it (at most five).
        close: Vec<String>,
    },
    /// A period without a fixed length (`MN1`).
    #[error("period {0:?} has no fixed length: not downloadable")]
    UnsupportedPeriod(ProtoOaTrendbarPeriod),
    /// The session could not authenticate.
    #[error("broker authentication failed: {0}")]
    Auth(String),
    /// The session was not ready in time, or stopped.
    #[error("broker session: {0}")]
    Session(String),
    /// A request got an error or an unexpected answer.
    #[error("{request}: {why}")]
    Request {
        /// The request (`GetTrendbarsReq`, …).
        request: &'static str,
        /// The server's code and description, or what went wrong.
        why: String,
    },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (close matches: {})", close.join(", "))
    }
}

/// A period's length in seconds; `None` for `MN1` (months differ). The same as
/// [`ProtoOaTrendbarPeriod::seconds`].
pub fn period_secs(p: ProtoOaTrendbarPeriod) -> Option<i64> {
    p.seconds()
}

/// The longest range one `GetTrendbarsReq` asks for: what older servers accepted per period
/// (M1–M5 about 5 weeks, M10–H1 about 35 weeks, H4–D1 about a year; CTRADER.md).
pub fn max_span_secs(p: ProtoOaTrendbarPeriod) -> i64 {
    use ProtoOaTrendbarPeriod as P;
    const DAY: i64 = 86_400;
    match p {
        P::M1 | P::M2 | P::M3 | P::M4 | P::M5 => 35 * DAY,
        P::M10 | P::M15 | P::M30 | P::H1 => 245 * DAY,
        _ => 365 * DAY,
    }
}

/// `[from, to)` cut into consecutive windows of at most [`max_span_secs`], oldest first.
pub fn windows(p: ProtoOaTrendbarPeriod, from: i64, to: i64) -> Vec<(i64, i64)> {
    let span = max_span_secs(p);
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = a.saturating_add(span).min(to);
        out.push((a, b));
        a = b;
    }
    out
}

/// The bars that opened at or after `from` and ended at or before both `to` and `server_now`
/// (Unix s), each open time once, oldest first.
pub fn closed_in_span(
    mut bars: Vec<Bar>,
    period_secs: i64,
    from: i64,
    to: i64,
    server_now: i64,
) -> Vec<Bar> {
    let end = to.min(server_now);
    bars.retain(|b| b.open_time >= from && b.open_time.saturating_add(period_secs) <= end);
    bars.sort_by_key(|b| b.open_time);
    bars.dedup_by_key(|b| b.open_time);
    bars
}

/// A price in 1e-5 units as a decimal with `digits` decimals (rounded half away from zero when
/// `digits` < 5; more than 5 pads with zeros).
pub fn format_price(units: i64, digits: u32) -> String {
    let d = digits.min(5);
    let step = 10i64.pow(5 - d);
    let neg = units < 0;
    let a = units.unsigned_abs() as i64;
    let r = (a + step / 2) / step;
    let scale = 10i64.pow(d);
    let mut s = String::new();
    if neg && r != 0 {
        s.push('-');
    }
    s.push_str(&(r / scale).to_string());
    if d > 0 {
        s.push_str(&format!(".{:0width$}", r % scale, width = d as usize));
        for _ in d..digits {
            s.push('0');
        }
    }
    s
}

/// The broker's names closest to `name`, best first, at most five: the same name in another
/// case, names that contain it or that it contains (ignoring case), then names within two edits.
pub fn close_matches<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let want = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .filter_map(|n| {
            let l = n.to_ascii_lowercase();
            let score = if l == want {
                0
            } else if !want.is_empty() && (l.contains(&want) || want.contains(&l)) {
                1
            } else {
                let d = edit_distance(&l, &want);
                if d <= 2 { 1 + d } else { return None }
            };
            Some((score, n.to_string()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The session for a download: no refresh token (never spent here).
pub fn session_config(mut credentials: Credentials, account_id: i64) -> SessionConfig {
    credentials.refresh_token = None;
    SessionConfig::new(credentials, account_id)
}

/// Connects and waits until the account is authorized (at most `timeout`).
pub async fn connect_ready(cfg: ClientConfig, timeout: Duration) -> Result<Client, HistoryError> {
    let (client, mut events) = connect(cfg).map_err(|e| HistoryError::Session(e.to_string()))?;
    let ready = tokio::time::timeout(timeout, async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Ready => return Ok(()),
                Event::AuthFailed { code, description } => {
                    return Err(HistoryError::Auth(format!(
                        "{code}{}: if the access token expired, run `oracle auth --refresh` (this command never spends the refresh token)",
                        description.map(|d| format!(" ({d})")).unwrap_or_default()
                    )));
                }
                Event::Disconnected { reason, .. } => {
                    use crate::session::DisconnectReason as R;
                    let why = match reason {
                        R::Io(s) | R::ConnectFailed(s) => s,
                        R::AuthError(code) => format!("authorization refused: {code}"),
                        other => format!("{other:?}"),
                    };
                    return Err(HistoryError::Session(why));
                }
                _ => {}
            }
        }
        Err(HistoryError::Session(
            "the driver stopped before the account was authorized".into(),
        ))
    })
    .await;
    match ready {
        Ok(Ok(())) => {
            // Later events (heartbeats, disconnects) are the requests' business.
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            Ok(client)
        }
        Ok(Err(e)) => {
            client.close().await;
            Err(e)
        }
        Err(_) => {
            client.close().await;
            Err(HistoryError::Session(format!(
                "the account was not authorized within {timeout:?}"
            )))
        }
    }
}

async fn ask(
    client: &Client,
    request: &'static str,
    p: impl Into<Payload>,
) -> Result<Payload, HistoryError> {
    let fail = |why: String| HistoryError::Request { request, why };
    match client.request(p).await.map_err(|e| fail(e.to_string()))? {
        Outcome::Response(p) => Ok(p),
        Outcome::Error { code, description } => Err(fail(format!(
            "{code}{}",
            description.map(|d| format!(" ({d})")).unwrap_or_default()
        ))),
        other => Err(fail(format!("no answer: {other:?}"))),
    }
}

/// A symbol as the broker knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSymbol {
    /// `symbolId`.
    pub id: i64,
    /// The broker's name.
    pub name: String,
    /// Price decimals.
    pub digits: u32,
}

/// Looks `name` up in the broker's symbol list (exact name), then its digits.
pub async fn find_symbol(
    client: &Client,
    account_id: i64,
    name: &str,
) -> Result<BrokerSymbol, HistoryError> {
    let list = ask(
        client,
        "SymbolsListReq",
        ProtoOaSymbolsListReq {
            ctid_trader_account_id: account_id,
            ..Default::default()
        },
    )
    .await?;
    let Payload::SymbolsListRes(list) = list else {
        return Err(HistoryError::Request {
            request: "SymbolsListReq",
            why: "unexpected answer".into(),
        });
    };
    let Some(id) = list
        .symbol
        .iter()
        .find(|s| s.symbol_name.as_deref() == Some(name))
        .map(|s| s.symbol_id)
    else {
        let names = list.symbol.iter().filter_map(|s| s.symbol_name.as_deref());
        return Err(HistoryError::UnknownSymbol {
            name: name.to_string(),
            close: close_matches(name, names),
        });
    };
    let res = ask(
        client,
        "SymbolByIdReq",
        ProtoOaSymbolByIdReq {
            ctid_trader_account_id: account_id,
            symbol_id: vec![id],
            ..Default::default()
        },
    )
    .await?;
    let Payload::SymbolByIdRes(res) = res else {
        return Err(HistoryError::Request {
            request: "SymbolByIdReq",
            why: "unexpected answer".into(),
        });
    };
    let digits = res
        .symbol
        .iter()
        .find(|s| s.symbol_id == id)
        .map(|s| s.digits.clamp(0, 10) as u32)
        .ok_or_else(|| HistoryError::Request {
            request: "SymbolByIdReq",
            why: format!("symbol {name:?} (id {id}) missing from the answer"),
        })?;
    Ok(BrokerSymbol {
        id,
        name: name.to_string(),
        digits,
    })
}

/// What [`download`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// The closed bars of the span, oldest first ([`closed_in_span`]).
    pub bars: Vec<Bar>,
    /// `GetTrendbarsReq` requests answered.
    pub requests: usize,
    /// The server's time (Unix s) of the last answer, or `now` when it sent none.
    pub server_time: i64,
}

/// Downloads the closed bars of `symbol_id` and `period` that opened in `[from, to)` (Unix s) and
/// ended by `to`; `now` (Unix s) stands for the server's time when an answer carries none.
pub async fn download(
    client: &Client,
    account_id: i64,
    symbol_id: i64,
    period: ProtoOaTrendbarPeriod,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Downloaded, HistoryError> {
    let len = period_secs(period).ok_or(HistoryError::UnsupportedPeriod(period))?;
    let mut bars = Vec::new();
    let mut requests = 0;
    let mut server_time = None::<i64>;
    for (a, b) in windows(period, from, to) {
        let mut hi = b;
        while a < hi {
            let req = ProtoOaGetTrendbarsReq {
                ctid_trader_account_id: account_id,
                from_timestamp: Some(a * 1000),
                to_timestamp: Some(hi * 1000),
                period: period as i32,
                symbol_id,
                ..Default::default()
            };
            let res = ask(client, "GetTrendbarsReq", req).await?;
            requests += 1;
            let Payload::GetTrendbarsRes(res) = res else {
                return Err(HistoryError::Request {
                    request: "GetTrendbarsReq",
                    why: "unexpected answer".into(),
                });
            };
            // Deprecated in release 91 but still sent (and required by the 0.9.2 schema): the
            // server's clock, which says which bars are closed.
            #[allow(deprecated)]
            if let Some(t) = res.timestamp {
                server_time = Some(t.div_euclid(1000));
            }
            let page: Vec<Bar> = res
                .trendbar
                .iter()
                .map(decode_trendbar)
                .collect::<Result<_, _>>()
                .map_err(|e| HistoryError::Request {
                    request: "GetTrendbarsReq",
                    why: e.to_string(),
                })?;
            let oldest = page.iter().map(|b| b.open_time).min();
            bars.extend(page);
            match (res.has_more.unwrap_or(false), oldest) {
                // The newest bars of [a, hi) came: the rest lies below the oldest.
                (true, Some(o)) if o < hi => hi = o,
                _ => break,
            }
        }
    }
    let server_time = server_time.unwrap_or(now);
    Ok(Downloaded {
        bars: closed_in_span(bars, len, from, to, server_time),
        requests,
        server_time,
    })
}

/// Writes `text` to `path` atomically: a temporary file in the same folder (created), fsynced,
/// renamed over `path`, then the folder fsynced. Errors name the path.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let shown = path.display();
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("{}: cannot create the folder: {e}", d.display()))?;
            d.to_path_buf()
        }
        None => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown}: not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{shown}: cannot write the bar file: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64) -> Bar {
        Bar {
            open_time: t,
            open: 107_160,
            high: 107_220,
            low: 107_083,
            close: 107_219,
            volume: 1413,
        }
    }

    #[test]
    fn the_bar_forming_at_to_or_at_the_server_clock_is_not_written() {
        let bars = vec![bar(7200), bar(0), bar(3600), bar(3600), bar(10_800)];
        // `to` at 3:30: the bar of 3:00 is still forming there.
        let got: Vec<i64> = closed_in_span(bars.clone(), 3600, 0, 12_600, i64::MAX)
            .iter()
            .map(|b| b.open_time)
            .collect();
        assert_eq!(got, vec![0, 3600, 7200]);
        // The server's clock at 2:59: the bar of 2:00 is forming.
        let got: Vec<i64> = closed_in_span(bars, 3600, 3600, 86_400, 10_799)
            .iter()
            .map(|b| b.open_time)
            .collect();
        assert_eq!(got, vec![3600]);
    }

    #[test]
    fn a_periods_length_is_its_timeframes_and_mn1_has_none() {
        use ProtoOaTrendbarPeriod as P;
        for (p, secs) in [
            (P::M1, 60),
            (P::M5, 300),
            (P::M15, 900),
            (P::H1, 3_600),
            (P::H4, 14_400),
            (P::H12, 43_200),
            (P::D1, 86_400),
            (P::W1, 604_800),
        ] {
            assert_eq!(period_secs(p), Some(secs), "{p:?}");
            assert_eq!(p.seconds(), Some(secs), "{p:?}");
        }
        assert_eq!(period_secs(P::Mn1), None);
        assert_eq!(P::Mn1.seconds(), None);
    }

    #[test]
    fn windows_cover_the_span_within_each_periods_range_cap() {
        let day = 86_400;
        let w = windows(ProtoOaTrendbarPeriod::M5, 0, 100 * day);
        assert_eq!(
            w,
            vec![(0, 35 * day), (35 * day, 70 * day), (70 * day, 100 * day)]
        );
        assert_eq!(windows(ProtoOaTrendbarPeriod::D1, 5, 6), vec![(5, 6)]);
        assert!(windows(ProtoOaTrendbarPeriod::H1, 6, 6).is_empty());
    }

    #[test]
    fn prices_have_the_symbols_digits() {
        assert_eq!(format_price(107_160, 5), "1.07160");
        assert_eq!(format_price(15_012_345, 3), "150.123");
        assert_eq!(format_price(15_012_350, 3), "150.124");
        assert_eq!(format_price(450_000_000, 2), "4500.00");
        assert_eq!(format_price(450_050_000, 0), "4501");
        assert_eq!(format_price(107_160, 6), "1.071600");
    }

    #[test]
    fn an_unknown_symbol_is_answered_with_the_close_names() {
        let list = ["EURUSD", "EURGBP", "US500.cash", "XAUUSD", "GBPUSD"];
        assert_eq!(close_matches("eurusd", list), vec!["EURUSD"]);
        assert_eq!(close_matches("US500", list), vec!["US500.cash"]);
        assert_eq!(close_matches("EURUSX", list)[0], "EURUSD");
        assert!(close_matches("BTCJPY", list).is_empty());
        let e = HistoryError::UnknownSymbol {
            name: "US500".into(),
            close: close_matches("US500", list),
        };
        assert_eq!(
            e.to_string(),
            "symbol \"US500\" is not in the broker's symbol list (close matches: US500.cash)"
        );
    }

    #[test]
    fn a_download_never_holds_the_refresh_token() {
        let creds = Credentials {
            client_id: crate::Secret::new("id"),
            client_secret: crate::Secret::new("secret"),
            access_token: crate::Secret::new("access"),
            refresh_token: Some(crate::Secret::new("refresh")),
        };
        let cfg = session_config(creds, 7);
        assert!(cfg.credentials.refresh_token.is_none());
    }
}
