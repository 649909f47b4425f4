//! `oracle doctor --broker`'s login checks: one short Open API connection (blocking TLS, the
//! frames of `oracle-ctrader`) that does what the executor's start does and says, one line each,
//! which step fails and how to fix it:
//!
//! - `broker-app`: `ApplicationAuthReq` with the application's client id and secret;
//! - `broker-account`: the account is among those the access token grants
//!   (`GetAccountListByAccessTokenReq`), of the host's kind (`isLive`: a live account on the demo
//!   host, or the reverse, fails naming the host to use), and `AccountAuthReq` passes;
//! - `broker-symbols`: every enabled symbol of `executor_config.json` is in the account's
//!   `SymbolsListReq` under its `broker_symbol` (`oracle_executor::symbols::resolve`, the
//!   executor's rule: a missing one is named with the broker's close names, e.g. `US500` →
//!   `US500.cash`).
//!
//! `broker-token` (no network): the access token's expiry and the days it has left, from the token
//! file the executor starts on (the newest pair wins, as in the executor).
//!
//! No token or secret is printed; they go on the wire only inside their requests.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oracle_ctrader::frame::{FrameDecoder, encode_envelope};
use oracle_ctrader::proto::{self as pb, Envelope, Payload};
use oracle_ctrader::tokenfile::TokenPair;

use crate::doctor::Check;

/// What the login needs (secrets resolved by the caller; never printed).
pub struct Login<'a> {
    /// `HOST:PORT`.
    pub endpoint: &'a str,
    /// Whether the host serves live (`Some(true)`) or demo accounts; `None`: not known (a
    /// simulator, a proxy), the kind is then reported, not checked.
    pub host_is_live: Option<bool>,
    /// The TLS client configuration (public roots or `--ca`).
    pub tls: Arc<rustls::ClientConfig>,
    /// The application's client id.
    pub client_id: &'a str,
    /// The application's client secret.
    pub client_secret: &'a str,
    /// The access token the executor would start on.
    pub access_token: &'a str,
    /// Whether a refresh token goes with it: an access token the broker reports expired is
    /// then no failure (the executor refreshes it at start), a WARN.
    pub refreshable: bool,
    /// The trading account (`ctidTraderAccountId`); `None`: the account steps say SKIP.
    pub account_id: Option<i64>,
    /// The executor's configuration (its symbols and their `broker_symbol`); `None`: unreadable
    /// (its own line says why), the symbols are not checked.
    pub config: Option<oracle_executor::config::ExecutorConfig>,
    /// Connect and per-answer timeout.
    pub timeout: Duration,
}

struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    dec: FrameDecoder,
    next: u64,
    timeout: Duration,
}

impl Conn {
    fn open(
        endpoint: &str,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (host, _) = endpoint
            .rsplit_once(':')
            .ok_or_else(|| format!("{endpoint}: expected HOST:PORT"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = endpoint
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("{endpoint}: cannot resolve"))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("{endpoint}: TCP: {e}"))?;
        let _ = tcp.set_read_timeout(Some(timeout));
        let _ = tcp.set_write_timeout(Some(timeout));
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host}: {e}"))?;
        let conn =
            rustls::ClientConnection::new(tls, name).map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(Self {
            tls: rustls::StreamOwned::new(conn, tcp),
            dec: FrameDecoder::new(oracle_ctrader::DEFAULT_MAX_FRAME_LEN),
            next: 0,
            timeout,
        })
    }

    /// Sends `payload` and returns the answer with its id (or an error event).
    fn ask(&mut self, payload: impl Into<Payload>) -> Result<Payload, String> {
        self.next += 1;
        let id = format!("doctor-{}", self.next);
        let env = Envelope::new(payload, Some(id.clone()));
        let name = env.payload.name();
        self.tls
            .write_all(&encode_envelope(&env))
            .and_then(|()| self.tls.flush())
            .map_err(|e| format!("sending {name}: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(body) = self
                .dec
                .next_frame()
                .map_err(|e| format!("the answer to {name}: {e}"))?
            {
                let got =
                    Envelope::decode(&body).map_err(|e| format!("the answer to {name}: {e}"))?;
                let mine = got.client_msg_id.as_deref() == Some(id.as_str());
                if mine || matches!(got.payload, Payload::ErrorRes(_)) {
                    return Ok(got.payload);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer to {name} within {:?}", self.timeout));
            }
            let n = self
                .tls
                .read(&mut buf)
                .map_err(|e| format!("waiting for the answer to {name}: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "the server closed the connection before answering {name}"
                ));
            }
            self.dec.feed(&buf[..n]);
        }
    }
}

fn refusal(p: &Payload) -> Option<String> {
    let (code, description) = match p {
        Payload::OaErrorRes(e) => (&e.error_code, &e.description),
        Payload::ErrorRes(e) => (&e.error_code, &e.description),
        _ => return None,
    };
    Some(match description {
        Some(d) if !d.is_empty() => format!("{code} ({d})"),
        _ => code.clone(),
    })
}

fn kind(live: bool) -> &'static str {
    if live { "live" } else { "demo" }
}

/// `--broker auto`: application auth and the account list at `endpoint` (the list is the same on
/// both hosts), and the account's `isLive`.
pub fn account_is_live(
    endpoint: &str,
    tls: Arc<rustls::ClientConfig>,
    client_id: &str,
    client_secret: &str,
    access_token: &str,
    account_id: i64,
    timeout: Duration,
) -> Result<bool, String> {
    let mut c = Conn::open(endpoint, tls, timeout)?;
    let app = c.ask(pb::ProtoOaApplicationAuthReq {
        client_id: client_id.to_string(),
        client_secret: client_secret.to_string(),
        ..Default::default()
    })?;
    if let Some(why) = refusal(&app) {
        return Err(format!("{endpoint}: application auth refused: {why}"));
    }
    let list = match c.ask(pb::ProtoOaGetAccountListByAccessTokenReq {
        access_token: access_token.to_string(),
        ..Default::default()
    })? {
        Payload::GetAccountListByAccessTokenRes(r) => r,
        other => {
            let why = refusal(&other).unwrap_or_else(|| format!("unexpected {}", other.name()));
            return Err(format!("{endpoint}: the account list was refused: {why}"));
        }
    };
    let list = oracle_ctrader::accounts::AccountList {
        scope: None,
        accounts: list
            .ctid_trader_account
            .iter()
            .map(|a| oracle_ctrader::accounts::AccountInfo {
                ctid_trader_account_id: i64::try_from(a.ctid_trader_account_id).unwrap_or(i64::MAX),
                is_live: a.is_live,
                trader_login: a.trader_login,
                broker: None,
                balance: None,
                currency: None,
                note: None,
            })
            .collect(),
    };
    // Not granted: the verdict's message (it lists the granted accounts).
    oracle_ctrader::accounts::host_verdict(None, account_id, &list)?;
    list.accounts
        .iter()
        .find(|a| a.ctid_trader_account_id == account_id)
        .and_then(|a| a.is_live)
        .ok_or_else(|| {
            format!("{endpoint}: the server did not say whether account {account_id} is live")
        })
}

/// Logs in as the executor would and returns the `broker-app`, `broker-account` and
/// `broker-symbols` lines (a step that cannot run after a failed one says SKIP).
pub fn check_login(l: &Login<'_>) -> Vec<Check> {
    let at = l.endpoint;
    let skip_after = |name: &str, step: &str| {
        Check::skip(
            name,
            format!("not checked ({step} failed)"),
            "fix the line above",
        )
    };
    let mut c = match Conn::open(at, l.tls.clone(), l.timeout) {
        Ok(c) => c,
        Err(e) => {
            return vec![
                Check::fail(
                    "broker-app",
                    e,
                    "check the host, the port and the CA (the `broker` line)",
                ),
                skip_after("broker-account", "the connection"),
                skip_after("broker-symbols", "the connection"),
            ];
        }
    };
    let app = c.ask(pb::ProtoOaApplicationAuthReq {
        client_id: l.client_id.to_string(),
        client_secret: l.client_secret.to_string(),
        ..Default::default()
    });
    let app_fix = "set CTRADER_CLIENT_ID and CTRADER_CLIENT_SECRET (or ORACLE_CTRADER_*) in the secrets file to the application's (openapi.ctrader.com/apps → your application → Credentials)";
    match app.as_ref().map(refusal) {
        Ok(None) => {}
        Ok(Some(why)) => {
            return vec![
                Check::fail(
                    "broker-app",
                    format!("{at}: application auth refused: {why}"),
                    app_fix,
                ),
                skip_after("broker-account", "application auth"),
                skip_after("broker-symbols", "application auth"),
            ];
        }
        Err(e) => {
            return vec![
                Check::fail(
                    "broker-app",
                    format!("{at}: application auth: {e}"),
                    app_fix,
                ),
                skip_after("broker-account", "application auth"),
                skip_after("broker-symbols", "application auth"),
            ];
        }
    }
    let mut out = vec![Check::ok(
        "broker-app",
        format!("{at}: application authorized"),
    )];
    let Some(account) = l.account_id else {
        out.push(Check::fail(
            "broker-account",
            "no account id: ORACLE_CTRADER_ACCOUNT_ID (or CTRADER_ACCOUNT_ID) is not set",
            "set ORACLE_CTRADER_ACCOUNT_ID in the secrets file to the ctidTraderAccountId `oracle accounts` lists",
        ));
        out.push(skip_after("broker-symbols", "the account"));
        return out;
    };
    let token_fix = "the access token is refused: `sudo -u oracle oracle auth --secrets /etc/oracle-trader/secrets.env --redirect-uri URL` for a new pair (docs/auth.md)";
    let list = match c.ask(pb::ProtoOaGetAccountListByAccessTokenReq {
        access_token: l.access_token.to_string(),
        ..Default::default()
    }) {
        Ok(Payload::GetAccountListByAccessTokenRes(r)) => r,
        Ok(other) => {
            let why = refusal(&other).unwrap_or_else(|| format!("unexpected {}", other.name()));
            out.push(token_refused(
                l,
                format!("{at}: the account list was refused: {why}"),
                &why,
                token_fix,
            ));
            out.push(skip_after("broker-symbols", "the account"));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                "broker-account",
                format!("{at}: {e}"),
                token_fix,
            ));
            out.push(skip_after("broker-symbols", "the account"));
            return out;
        }
    };
    let granted: Vec<String> = list
        .ctid_trader_account
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a.ctid_trader_account_id,
                a.is_live.map_or("?", kind)
            )
        })
        .collect();
    let Some(entry) = list
        .ctid_trader_account
        .iter()
        .find(|a| i64::try_from(a.ctid_trader_account_id) == Ok(account))
    else {
        out.push(Check::fail(
            "broker-account",
            format!(
                "account {account} is not among the accounts the access token grants ({})",
                if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
            ),
            "ORACLE_CTRADER_ACCOUNT_ID is the ctidTraderAccountId `oracle accounts` lists (not the trader login); or `oracle auth` with the cTrader ID that owns the account",
        ));
        out.push(skip_after("broker-symbols", "the account"));
        return out;
    };
    let acc_live = entry.is_live;
    if let (Some(host), Some(acc)) = (l.host_is_live, acc_live)
        && host != acc
    {
        let want = oracle_ctrader::accounts::host_for(acc);
        out.push(Check::fail(
            "broker-account",
            format!(
                "account {account} is a {} account and {at} is the {} host",
                kind(acc),
                kind(host)
            ),
            format!(
                "use --broker {}:{} (or --broker auto) in the executor and doctor",
                want.host, want.port
            ),
        ));
        out.push(skip_after("broker-symbols", "the account"));
        return out;
    }
    match c.ask(pb::ProtoOaAccountAuthReq {
        ctid_trader_account_id: account,
        access_token: l.access_token.to_string(),
        ..Default::default()
    }) {
        Ok(p) if refusal(&p).is_none() => {}
        Ok(p) => {
            let why = refusal(&p).unwrap_or_default();
            out.push(token_refused(
                l,
                format!("{at}: account {account} auth refused: {why}"),
                &why,
                token_fix,
            ));
            out.push(skip_after("broker-symbols", "account auth"));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                "broker-account",
                format!("{at}: account auth: {e}"),
                token_fix,
            ));
            out.push(skip_after("broker-symbols", "account auth"));
            return out;
        }
    }
    let kind_note = match (acc_live, l.host_is_live) {
        (Some(acc), Some(_)) => format!("a {} account on the {} host", kind(acc), kind(acc)),
        (Some(acc), None) => {
            let want = oracle_ctrader::accounts::host_for(acc);
            format!(
                "a {} account (on cTrader it trades on {}:{})",
                kind(acc),
                want.host,
                want.port
            )
        }
        (None, _) => "the server did not say live or demo".to_string(),
    };
    out.push(Check::ok(
        "broker-account",
        format!("{at}: account {account} authorized, {kind_note}"),
    ));
    let symbols = match c.ask(pb::ProtoOaSymbolsListReq {
        ctid_trader_account_id: account,
        ..Default::default()
    }) {
        Ok(Payload::SymbolsListRes(r)) => r,
        Ok(other) => {
            let why = refusal(&other).unwrap_or_else(|| format!("unexpected {}", other.name()));
            out.push(Check::fail(
                "broker-symbols",
                format!("{at}: the symbol list was refused: {why}"),
                "retry; if it persists, the broker's status page",
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail("broker-symbols", format!("{at}: {e}"), "retry"));
            return out;
        }
    };
    let names: Vec<String> = symbols
        .symbol
        .iter()
        .filter_map(|s| s.symbol_name.clone())
        .collect();
    c.tls.conn.send_close_notify();
    let _ = c.tls.flush();
    out.push(match &l.config {
        Some(cfg) => symbols_verdict(cfg, &names),
        None => Check::skip(
            "broker-symbols",
            format!(
                "not checked: the config could not be read ({} symbols at the broker)",
                names.len()
            ),
            "fix the config line above",
        ),
    });
    out
}

/// The broker refused the access token: FAIL, except an expired one with a refresh token held,
/// which the executor's start refreshes (WARN: a kill -9 around a refresh restarts with no person
/// involved, and this check must not stop that start).
fn token_refused(l: &Login<'_>, detail: String, why: &str, fix: &str) -> Check {
    if l.refreshable && why.starts_with("OA_AUTH_TOKEN_EXPIRED") {
        Check::warn(
            "broker-account",
            format!(
                "{detail}: the access token has expired; the executor spends the refresh token at start and stores the new pair (the account and symbols are checked then)"
            ),
            "none: the executor refreshes it; if its start then fails with exit status 78, `oracle auth` (docs/auth.md)",
        )
    } else {
        Check::fail("broker-account", detail, fix)
    }
}

/// `broker-symbols`: every enabled symbol's broker name (`broker_symbol`, default the model's)
/// at the broker (`oracle_executor::symbols::resolve`, the executor's own rule), or FAIL naming
/// the missing ones with their close matches.
pub fn symbols_verdict(cfg: &oracle_executor::config::ExecutorConfig, broker: &[String]) -> Check {
    const N: &str = "broker-symbols";
    let enabled = cfg.symbols.values().filter(|s| s.enabled).count();
    match oracle_executor::symbols::resolve(cfg, broker) {
        Ok(map) => {
            let renamed: Vec<String> = map
                .to_broker
                .iter()
                .filter(|(m, b)| m != b && cfg.symbols.get(*m).is_some_and(|s| s.enabled))
                .map(|(m, b)| format!("{m} as {b}"))
                .collect();
            let note = if renamed.is_empty() {
                String::new()
            } else {
                format!("; {}", renamed.join(", "))
            };
            Check::ok(
                N,
                format!(
                    "{enabled} enabled symbol(s), every one at the broker ({} symbols listed){note}",
                    broker.len()
                ),
            )
        }
        Err(e) => Check::fail(
            N,
            format!(
                "{} of {enabled} enabled symbol(s) not at the broker: {}",
                e.missing.len(),
                e.missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "set \"broker_symbol\" on the symbol in executor_config.json to the broker's name (FTMO: \"US500\": {\"broker_symbol\": \"US500.cash\", …}), or set \"enabled\": false",
        ),
    }
}

/// `broker-token`: the access token's expiry and days left at `now_ms`. `stored` is the token
/// file's pair (when there is one), `secrets_pair` whether the secrets give an access and a
/// refresh token.
pub fn check_token(
    stored: Option<&TokenPair>,
    file: &Path,
    secrets_pair: bool,
    now_ms: i64,
) -> Check {
    const N: &str = "broker-token";
    let shown = file.display();
    let auth_fix = "sudo -u oracle oracle auth --secrets /etc/oracle-trader/secrets.env --redirect-uri URL (docs/auth.md)";
    match stored {
        Some(p) => {
            let left = p.seconds_left(now_ms);
            let until = format_utc(p.expires_at_ms);
            if left > 0 {
                Check::ok(
                    N,
                    format!(
                        "{shown}: the access token expires {until}, {} days left (the executor refreshes it a day ahead and stores the new pair here)",
                        left.div_euclid(86_400)
                    ),
                )
            } else {
                Check::warn(
                    N,
                    format!(
                        "{shown}: the access token expired {until} ({} days ago); the executor spends the refresh token at start",
                        (-left).div_euclid(86_400)
                    ),
                    format!("none needed if the executor starts authenticated; else {auth_fix}"),
                )
            }
        }
        None if secrets_pair => Check::warn(
            N,
            format!(
                "no token file at {shown}: the secrets' pair is used, its expiry is unknown until the executor's first refresh stores one"
            ),
            format!("{auth_fix}, which writes the token file with its expiry"),
        ),
        None => Check::fail(
            N,
            format!("no token file at {shown} and no access and refresh token in the secrets"),
            auth_fix.to_string(),
        ),
    }
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        // 2026-12-06 21:30 UTC
        assert_eq!(format_utc(1_796_592_600_000), "2026-12-06 21:30 UTC");
    }
}
