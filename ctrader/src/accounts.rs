//! The accounts an access token can trade (`oracle accounts`).
//!
//! One short connection: `ApplicationAuthReq`, then `GetAccountListByAccessTokenReq` (each
//! account's `ctidTraderAccountId` — not the login the cTrader UI shows —, `isLive`,
//! `traderLogin`, `brokerTitleShort`, and the token's `permissionScope`). With balances asked
//! for, each account is then authorized on the same connection (`AccountAuthReq`) and read
//! (`TraderReq`: balance in `moneyDigits`, deposit asset; `AssetListReq`: the asset's name). A
//! live account authorizes only on the live host and a demo one only on the demo host: an
//! account the host refuses keeps its list entry with the refusal as its note.
//!
//! The access token and client secret go on the wire only inside their requests; no error of
//! this module carries them.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::creds::Secret;
use crate::driver::{Endpoint, TlsMode};
use crate::frame::{FrameDecoder, encode_envelope};
use crate::proto::{self as pb, Envelope, Payload};

/// One account the token grants.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountInfo {
    /// `ctidTraderAccountId`: what the executor's `--account-id` wants.
    pub ctid_trader_account_id: i64,
    /// Live (`true`) or demo; `None` when the server did not say.
    pub is_live: Option<bool>,
    /// The login the cTrader UI shows.
    pub trader_login: Option<i64>,
    /// The broker (`brokerTitleShort`, else the trader's `brokerName`).
    pub broker: Option<String>,
    /// Balance in the deposit currency (when read).
    pub balance: Option<f64>,
    /// The deposit currency (when read).
    pub currency: Option<String>,
    /// Why the balance is missing (the host refused the account), if it is.
    pub note: Option<String>,
}

/// What the token may do and the accounts it grants.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountList {
    /// `view` or `trade` (`permissionScope`), when the server said.
    pub scope: Option<&'static str>,
    /// The accounts, in the server's order.
    pub accounts: Vec<AccountInfo>,
}

struct Conn {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    dec: FrameDecoder,
    buf: Vec<u8>,
    next: u64,
    timeout: Duration,
}

impl Conn {
    async fn ask(&mut self, payload: impl Into<Payload>) -> Result<Payload, String> {
        self.next += 1;
        let id = format!("accounts-{}", self.next);
        let env = Envelope::new(payload, Some(id.clone()));
        let name = env.payload.name();
        self.stream
            .write_all(&encode_envelope(&env))
            .await
            .map_err(|e| format!("sending {name}: {e}"))?;
        self.stream
            .flush()
            .await
            .map_err(|e| format!("sending {name}: {e}"))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            while let Some(body) = self
                .dec
                .next_frame()
                .map_err(|e| format!("waiting for the answer to {name}: {e}"))?
            {
                let got = Envelope::decode(&body)
                    .map_err(|e| format!("waiting for the answer to {name}: {e}"))?;
                let mine = got.client_msg_id.as_deref() == Some(id.as_str());
                let error = matches!(got.payload, Payload::ErrorRes(_));
                if mine || error {
                    return Ok(got.payload);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| format!("no answer to {name} within {:?}", self.timeout))?
                .map_err(|e| format!("waiting for the answer to {name}: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "the server closed the connection before answering {name}"
                ));
            }
            self.dec.feed(&self.buf[..n]);
        }
    }
}

fn refusal(p: &Payload) -> Option<String> {
    match p {
        Payload::OaErrorRes(e) => Some(match &e.description {
            Some(d) if !d.is_empty() => format!("{} ({d})", e.error_code),
            _ => e.error_code.clone(),
        }),
        Payload::ErrorRes(e) => Some(match &e.description {
            Some(d) if !d.is_empty() => format!("{} ({d})", e.error_code),
            _ => e.error_code.clone(),
        }),
        _ => None,
    }
}

/// Lists the accounts `access_token` grants, on `endpoint` as application `client_id`; with
/// `balances`, also each account's balance and currency where the host serves the account.
/// `timeout` bounds the connect and each answer.
pub async fn list_accounts(
    endpoint: &Endpoint,
    tls: &TlsMode,
    client_id: &Secret,
    client_secret: &Secret,
    access_token: &Secret,
    balances: bool,
    timeout: Duration,
) -> Result<AccountList, String> {
    let at = format!("{}:{}", endpoint.host, endpoint.port);
    let connector =
        crate::driver::tls_connector(endpoint, tls).map_err(|e| format!("{at}: {e}"))?;
    let server_name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|e| format!("{at}: {e}"))?;
    let stream = tokio::time::timeout(timeout, async {
        let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("{at}: connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("{at}: TLS: {e}"))
    })
    .await
    .map_err(|_| format!("{at}: no connection within {timeout:?}"))??;
    let mut c = Conn {
        stream,
        dec: FrameDecoder::new(crate::DEFAULT_MAX_FRAME_LEN),
        buf: vec![0; 64 * 1024],
        next: 0,
        timeout,
    };
    let app = c
        .ask(pb::ProtoOaApplicationAuthReq {
            client_id: client_id.expose().to_string(),
            client_secret: client_secret.expose().to_string(),
            ..Default::default()
        })
        .await?;
    if let Some(why) = refusal(&app) {
        return Err(format!(
            "{at}: application auth refused: {why} (check CTRADER_CLIENT_ID / CTRADER_CLIENT_SECRET)"
        ));
    }
    let list = c
        .ask(pb::ProtoOaGetAccountListByAccessTokenReq {
            access_token: access_token.expose().to_string(),
            ..Default::default()
        })
        .await?;
    let res = match list {
        Payload::GetAccountListByAccessTokenRes(r) => r,
        other => {
            let why = refusal(&other).unwrap_or_else(|| format!("unexpected {}", other.name()));
            return Err(format!(
                "{at}: the account list was refused: {why} (an expired or refreshed token: run `oracle auth --refresh`)"
            ));
        }
    };
    let scope = res.permission_scope.map(|s| {
        if s == pb::ProtoOaClientPermissionScope::ScopeTrade as i32 {
            "trade"
        } else {
            "view"
        }
    });
    let mut accounts = Vec::new();
    for a in &res.ctid_trader_account {
        let mut info = AccountInfo {
            ctid_trader_account_id: i64::try_from(a.ctid_trader_account_id).unwrap_or(i64::MAX),
            is_live: a.is_live,
            trader_login: a.trader_login,
            broker: a.broker_title_short.clone().filter(|b| !b.is_empty()),
            balance: None,
            currency: None,
            note: None,
        };
        if balances {
            read_balance(&mut c, access_token, &mut info).await?;
        }
        accounts.push(info);
    }
    let _ = c.stream.shutdown().await;
    Ok(AccountList { scope, accounts })
}

async fn read_balance(
    c: &mut Conn,
    access_token: &Secret,
    info: &mut AccountInfo,
) -> Result<(), String> {
    let id = info.ctid_trader_account_id;
    let auth = c
        .ask(pb::ProtoOaAccountAuthReq {
            ctid_trader_account_id: id,
            access_token: access_token.expose().to_string(),
            ..Default::default()
        })
        .await?;
    if let Some(why) = refusal(&auth) {
        info.note = Some(format!("not authorized on this host: {why}"));
        return Ok(());
    }
    let trader = match c
        .ask(pb::ProtoOaTraderReq {
            ctid_trader_account_id: id,
            ..Default::default()
        })
        .await?
    {
        Payload::TraderRes(r) => r.trader,
        other => {
            info.note = Some(format!(
                "no balance: {}",
                refusal(&other).unwrap_or_else(|| other.name().to_string())
            ));
            return Ok(());
        }
    };
    let digits = i32::try_from(trader.money_digits.unwrap_or(2)).unwrap_or(2);
    info.balance = Some(trader.balance as f64 / 10f64.powi(digits));
    if info.broker.is_none() {
        info.broker = trader.broker_name.clone().filter(|b| !b.is_empty());
    }
    if info.trader_login.is_none() {
        info.trader_login = trader.trader_login;
    }
    if let Payload::AssetListRes(r) = c
        .ask(pb::ProtoOaAssetListReq {
            ctid_trader_account_id: id,
            ..Default::default()
        })
        .await?
    {
        info.currency = r
            .asset
            .iter()
            .find(|a| a.asset_id == trader.deposit_asset_id)
            .map(|a| a.name.clone());
    }
    Ok(())
}

/// Which environment `host` serves: `Some(true)` for Spotware's live host, `Some(false)` for the
/// demo host, `None` for any other (a simulator, a proxy: no rule applies).
pub fn host_is_live(host: &str) -> Option<bool> {
    let h = host.trim_end_matches('.');
    if h.eq_ignore_ascii_case(crate::driver::LIVE_HOST) {
        Some(true)
    } else if h.eq_ignore_ascii_case(crate::driver::DEMO_HOST) {
        Some(false)
    } else {
        None
    }
}

/// The host an account of this kind trades on (`isLive`).
pub fn host_for(is_live: bool) -> Endpoint {
    if is_live {
        Endpoint::live()
    } else {
        Endpoint::demo()
    }
}

/// Whether `account_id` can trade on a host of kind `host_is_live` ([`host_is_live`]), by the
/// token's list: an account the token does not grant, or a live account on the demo host (or
/// the reverse), is refused with the host to use. Any account passes a host of no known kind.
pub fn host_verdict(
    host_is_live: Option<bool>,
    account_id: i64,
    list: &AccountList,
) -> Result<(), String> {
    let Some(a) = list
        .accounts
        .iter()
        .find(|a| a.ctid_trader_account_id == account_id)
    else {
        let granted: Vec<String> = list
            .accounts
            .iter()
            .map(|a| {
                let kind = match a.is_live {
                    Some(true) => "live",
                    Some(false) => "demo",
                    None => "?",
                };
                format!("{} {kind}", a.ctid_trader_account_id)
            })
            .collect();
        return Err(format!(
            "account {account_id} is not among the accounts the access token grants ({}): the account id is the ctidTraderAccountId `oracle accounts` lists, not the trader login",
            if granted.is_empty() {
                "none".to_string()
            } else {
                granted.join(", ")
            }
        ));
    };
    match (host_is_live, a.is_live) {
        (Some(host), Some(acc)) if host != acc => {
            let (kind, other) = if acc {
                ("live", "demo")
            } else {
                ("demo", "live")
            };
            let want = host_for(acc);
            Err(format!(
                "account {account_id} is a {kind} account and the broker host is the {other} one: use --broker {}:{}",
                want.host, want.port
            ))
        }
        _ => Ok(()),
    }
}

/// `--broker auto`: the host `account_id` trades on, by its `isLive` in the token's account list
/// read at `list_at` (the list is the same on both hosts): `live` or `demo`. An account the token
/// does not grant, or one the server does not say live or demo for, is an error naming it; so is
/// a list that cannot be read (no host can be chosen without it).
#[allow(clippy::too_many_arguments)]
pub async fn pick_host(
    list_at: &Endpoint,
    live: &Endpoint,
    demo: &Endpoint,
    tls: &TlsMode,
    client_id: &Secret,
    client_secret: &Secret,
    access_token: &Secret,
    account_id: i64,
    timeout: Duration,
) -> Result<(Endpoint, bool), String> {
    let list = list_accounts(
        list_at,
        tls,
        client_id,
        client_secret,
        access_token,
        false,
        timeout,
    )
    .await
    .map_err(|e| {
        format!("--broker auto: the account list could not be read ({e}); or name the host: --broker live.ctraderapi.com:5035 / demo.ctraderapi.com:5035")
    })?;
    host_verdict(None, account_id, &list)?;
    let is_live = list
        .accounts
        .iter()
        .find(|a| a.ctid_trader_account_id == account_id)
        .and_then(|a| a.is_live)
        .ok_or_else(|| {
            format!(
                "--broker auto: the server does not say whether account {account_id} is live or demo: name the host with --broker HOST:PORT"
            )
        })?;
    Ok((if is_live { live.clone() } else { demo.clone() }, is_live))
}

/// What [`check_account_host`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCheck {
    /// The account trades on this host (or the host is of no known kind).
    Ok,
    /// The account cannot trade here: why, and the host to use.
    Refused(String),
    /// The list could not be read (network, an expired token): why. Not a verdict.
    Unchecked(String),
}

/// Reads the token's account list on `endpoint` (application auth and the list only) and
/// applies [`host_verdict`] for a host of kind `host_is_live`.
#[allow(clippy::too_many_arguments)]
pub async fn check_account_host(
    endpoint: &Endpoint,
    tls: &TlsMode,
    client_id: &Secret,
    client_secret: &Secret,
    access_token: &Secret,
    account_id: i64,
    host_is_live: Option<bool>,
    timeout: Duration,
) -> HostCheck {
    match list_accounts(
        endpoint,
        tls,
        client_id,
        client_secret,
        access_token,
        false,
        timeout,
    )
    .await
    {
        Err(why) => HostCheck::Unchecked(why),
        Ok(list) => match host_verdict(host_is_live, account_id, &list) {
            Ok(()) => HostCheck::Ok,
            Err(why) => HostCheck::Refused(why),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> AccountList {
        let acc = |id, live| AccountInfo {
            ctid_trader_account_id: id,
            is_live: Some(live),
            trader_login: None,
            broker: None,
            balance: None,
            currency: None,
            note: None,
        };
        AccountList {
            scope: Some("trade"),
            accounts: vec![acc(1, true), acc(2, false)],
        }
    }

    #[test]
    fn a_live_account_on_the_demo_host_is_refused_naming_the_live_host_and_the_reverse() {
        let l = list();
        assert_eq!(host_is_live("live.ctraderapi.com"), Some(true));
        assert_eq!(host_is_live("DEMO.ctraderapi.com."), Some(false));
        assert_eq!(host_is_live("127.0.0.1"), None);
        assert_eq!(host_verdict(Some(true), 1, &l), Ok(()));
        assert_eq!(host_verdict(Some(false), 2, &l), Ok(()));
        let e = host_verdict(Some(false), 1, &l).unwrap_err();
        assert!(
            e.contains("live account") && e.contains("--broker live.ctraderapi.com:5035"),
            "{e}"
        );
        let e = host_verdict(Some(true), 2, &l).unwrap_err();
        assert!(e.contains("--broker demo.ctraderapi.com:5035"), "{e}");
        assert_eq!(host_verdict(None, 2, &l), Ok(()));
        let e = host_verdict(None, 7001001, &l).unwrap_err();
        assert!(
            e.contains("7001001") && e.contains("1 live, 2 demo") && e.contains("oracle accounts"),
            "{e}"
        );
    }
}
