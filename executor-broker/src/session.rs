//! Where and as whom the live broker connects (`--broker`, feature `live`): the credentials
//! (the secrets file or the environment, else the pair `oracle auth` wrote to the token file,
//! the newer pair winning: [`crate::live::startup_credentials`]), the TLS mode, the host
//! (`--broker auto`: the account's by its `isLive`, the choice kept in the state folder) and,
//! on Spotware's hosts, the account's kind checked against the host's.

#[cfg(feature = "live")]
use std::path::Path;
use std::path::PathBuf;
#[cfg(feature = "live")]
use std::time::Duration;

#[cfg(feature = "live")]
use anyhow::{Context, bail};
#[cfg(feature = "live")]
use oracle_ctrader::Credentials;
#[cfg(feature = "live")]
use oracle_ctrader::driver::{ClientConfig, Endpoint, TlsMode};
#[cfg(feature = "live")]
use oracle_secrets::SecretsFile;
#[cfg(feature = "live")]
use tracing::{info, warn};

/// Where the live broker is.
#[derive(Clone, Debug)]
pub struct BrokerTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Trading account (`ctidTraderAccountId`).
    pub account_id: i64,
    /// CA PEM to trust (the simulator's), else the public roots.
    pub ca: Option<PathBuf>,
    /// Skip certificate checks (loopback hosts only).
    pub insecure_local: bool,
    /// `--broker auto`: the live and the demo host (`HOST:PORT` each) to choose from by the
    /// account's `isLive` (the list is read at the demo one); `host`/`port` are then set at start.
    pub auto: Option<(String, String)>,
}

/// The session's credentials: the secrets file's (`secrets`), else the environment's
/// (`CTRADER_*`, `ORACLE_CTRADER_*`); without tokens there, the application's keys with the pair
/// in `token_file`; then the newer of that pair and the token file's (issue 17 item 2).
#[cfg(feature = "live")]
pub fn credentials(
    secrets: Option<&SecretsFile>,
    token_file: &Path,
) -> anyhow::Result<Credentials> {
    // Issue 17 item 2: the newest pair (token file in the state folder vs secrets) wins.
    let creds = match secrets {
        Some(f) => credentials_from(f),
        None => oracle_ctrader::Credentials::from_env()
            .map_err(|e| anyhow::anyhow!("broker credentials: {e}")),
    };
    // `oracle auth` wrote the pair to the token file: the secrets need only the application's
    // keys then (the runbook's path), not tokens copied from it.
    let creds = match (creds, oracle_ctrader::tokenfile::load(token_file)) {
        (Ok(c), _) => c,
        (Err(e), Ok(Some(pair))) => {
            let app = |k: &str| match secrets {
                Some(f) => f.ctrader(k).map(oracle_ctrader::Secret::new),
                None => [format!("CTRADER_{k}"), format!("ORACLE_CTRADER_{k}")]
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
                    .map(oracle_ctrader::Secret::new),
            };
            match (app("CLIENT_ID"), app("CLIENT_SECRET")) {
                (Some(client_id), Some(client_secret)) => oracle_ctrader::Credentials {
                    client_id,
                    client_secret,
                    access_token: pair.access_token,
                    refresh_token: Some(pair.refresh_token),
                },
                _ => return Err(e),
            }
        }
        (Err(e), _) => return Err(e),
    };
    let (creds, _expires_at_ms) =
        crate::live::startup_credentials(creds, token_file, crate::live::utc_ms())?;
    Ok(creds)
}

/// The TLS mode of `b`: its CA (`--ca`), else no checks on a loopback host
/// (`--insecure-local`), else the public roots.
#[cfg(feature = "live")]
pub fn tls_mode(b: &BrokerTarget) -> anyhow::Result<TlsMode> {
    Ok(match (&b.ca, b.insecure_local) {
        (Some(p), _) => {
            TlsMode::CustomCa(std::fs::read(p).with_context(|| format!("--ca {}", p.display()))?)
        }
        (None, true) => TlsMode::InsecureLocal,
        (None, false) => TlsMode::WebPki,
    })
}

/// Sets `b`'s host: with `--broker auto` the account's (by its `isLive`, read at the demo host;
/// the choice kept in `state_dir`'s `broker-host`, used when the list cannot be read), and on
/// Spotware's hosts stops when the account is not of the host's kind, naming the host to use.
#[cfg(feature = "live")]
pub async fn resolve_host(
    b: &mut BrokerTarget,
    tls: &TlsMode,
    creds: &Credentials,
    state_dir: &Path,
) -> anyhow::Result<()> {
    // `--broker auto`: the account's host by its isLive (issue 17 item 3).
    if let Some((live_host, demo_host)) = &b.auto {
        let ep = |s: &str| -> anyhow::Result<Endpoint> {
            let (h, p) = s
                .rsplit_once(':')
                .context("--live-host/--demo-host want HOST:PORT")?;
            Ok(Endpoint {
                host: h.to_string(),
                port: p.parse().context("--live-host/--demo-host: bad port")?,
            })
        };
        let (live_ep, demo_ep) = (ep(live_host)?, ep(demo_host)?);
        let picked = oracle_ctrader::accounts::pick_host(
            &demo_ep,
            &live_ep,
            &demo_ep,
            tls,
            &creds.client_id,
            &creds.client_secret,
            &creds.access_token,
            b.account_id,
            Duration::from_secs(15),
        )
        .await;
        // The choice is kept in the state folder: an access token that expired while the
        // executor was down cannot read the list, and only the session (on the right host)
        // refreshes it. An account's kind does not change.
        let cache = state_dir.join("broker-host");
        let (at, is_live) = match picked {
            Ok((at, is_live)) => {
                let line = format!("{} {} {}:{}\n", b.account_id, is_live, at.host, at.port);
                let tmp = cache.with_extension("tmp");
                if let Err(e) = std::fs::create_dir_all(state_dir)
                    .and_then(|()| std::fs::write(&tmp, line))
                    .and_then(|()| std::fs::rename(&tmp, &cache))
                {
                    warn!(path = %cache.display(), "--broker auto: the host chosen is not kept: {e}");
                }
                (at, is_live)
            }
            Err(e) => {
                let kept = std::fs::read_to_string(&cache).ok().and_then(|t| {
                    let mut f = t.split_whitespace();
                    let (acc, live) = (f.next()?.parse::<i64>().ok()?, f.next()?.parse().ok()?);
                    let want = if live { &live_ep } else { &demo_ep };
                    (acc == b.account_id && f.next()? == format!("{}:{}", want.host, want.port))
                        .then(|| (want.clone(), live))
                });
                match kept {
                    Some(v) => {
                        warn!("{e}; the host chosen at the last start is used");
                        v
                    }
                    None => bail!("{e}"),
                }
            }
        };
        let kind = if is_live { "live" } else { "demo" };
        info!(
            account = b.account_id,
            kind = %kind,
            host = %format!("{}:{}", at.host, at.port),
            "--broker auto: the account's host by its isLive"
        );
        b.host = at.host;
        b.port = at.port;
    }
    // On Spotware's hosts the account must be of the host's kind (isLive): else stop, naming
    // the host to use (docs/auth.md). A list that cannot be read is no verdict.
    if let Some(live) = oracle_ctrader::accounts::host_is_live(&b.host).filter(|_| b.auto.is_none())
    {
        use oracle_ctrader::accounts::{HostCheck, check_account_host};
        let at = Endpoint {
            host: b.host.clone(),
            port: b.port,
        };
        let (id, secret, access) = (&creds.client_id, &creds.client_secret, &creds.access_token);
        let timeout = Duration::from_secs(15);
        match check_account_host(
            &at,
            tls,
            id,
            secret,
            access,
            b.account_id,
            Some(live),
            timeout,
        )
        .await
        {
            HostCheck::Refused(why) => bail!("{why}"),
            HostCheck::Unchecked(why) => warn!("the account's live/demo kind not checked: {why}"),
            HostCheck::Ok => {}
        }
    }
    Ok(())
}

/// The session's configuration: `b`'s host and account, `creds`, `tls`; the
/// `before_refresh_request` failpoint; with `live_close` (`--bar-close live`) closed bars from
/// the live stream's final snapshot.
#[cfg(feature = "live")]
pub fn client_config(
    b: &BrokerTarget,
    creds: Credentials,
    tls: TlsMode,
    live_close: bool,
) -> ClientConfig {
    let mut session = oracle_ctrader::SessionConfig::new(creds, b.account_id);
    session.before_refresh_request =
        Some(|| crate::failpoint::hit(crate::failpoint::Point::BeforeRefreshRequest));
    session.live_close = live_close;
    if live_close {
        info!(
            "--bar-close live: closed bars go out from the live stream's final snapshot; history confirms them afterwards (a difference is sent again as a revision, bar_revised)"
        );
    }
    ClientConfig::new(
        Endpoint {
            host: b.host.clone(),
            port: b.port,
        },
        tls,
        session,
    )
}

/// Broker credentials from a secrets file (either key spelling); the error names the key only.
#[cfg(feature = "live")]
fn credentials_from(f: &SecretsFile) -> anyhow::Result<oracle_ctrader::Credentials> {
    use oracle_ctrader::Secret as S;
    let need = |name: &str| {
        f.ctrader(name).map(S::new).with_context(|| {
            format!(
                "broker credentials: secrets file {}: neither CTRADER_{name} nor ORACLE_CTRADER_{name} is set",
                f.path.display()
            )
        })
    };
    Ok(oracle_ctrader::Credentials {
        client_id: need("CLIENT_ID")?,
        client_secret: need("CLIENT_SECRET")?,
        access_token: need("ACCESS_TOKEN")?,
        refresh_token: f.ctrader("REFRESH_TOKEN").map(S::new),
    })
}

#[cfg(all(test, feature = "live"))]
mod tests {
    use super::*;

    #[test]
    fn the_live_session_keeps_a_margin_over_the_servers_one_second_rate_window() {
        let b = BrokerTarget {
            host: "demo.ctraderapi.com".into(),
            port: 5035,
            account_id: 7,
            ca: None,
            insecure_local: false,
            auto: None,
        };
        let creds = Credentials {
            client_id: oracle_ctrader::Secret::new("id"),
            client_secret: oracle_ctrader::Secret::new("secret"),
            access_token: oracle_ctrader::Secret::new("access"),
            refresh_token: None,
        };
        let cfg = client_config(&b, creds, TlsMode::WebPki, true);
        assert_eq!(
            cfg.session.rate_window,
            Duration::from_secs(1) + oracle_ctrader::session::RATE_MARGIN
        );
        assert_eq!(cfg.session.max_history_per_window, 5);
    }
}
