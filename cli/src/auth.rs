//! `oracle auth` and `oracle accounts`: getting a cTrader token pair and finding the account id.
//!
//! The application's client id and secret come from the secrets file (`--secrets FILE`) or,
//! without it, the environment, by the one rule of `oracle_secrets`
//! (`CTRADER_<NAME>` or `ORACLE_CTRADER_<NAME>`). The token pair goes to the token file
//! (`oracle_ctrader::tokenfile`: 0600, temp + fsync + rename) in the state folder. No token,
//! code or secret is ever printed; this command installs no logger (the HTTP client's TRACE
//! lines carry the query).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oracle_ctrader::Secret;
use oracle_ctrader::oauth::{self, Scope, TokenEndpoint};
use oracle_ctrader::tokenfile::{self, TokenPair};
use oracle_secrets::SecretsFile;

/// The deploy kit's executor state folder (its `--state`, in `StateDirectory=oracle-trader`):
/// the token file lives there, where the executor stores each pair it rotates to.
pub const DEFAULT_STATE: &str = "/var/lib/oracle-trader/executor";

/// The token file `oracle auth`, `oracle history` and the deployed executor share.
pub fn default_token_file() -> PathBuf {
    tokenfile::path_in(Path::new(DEFAULT_STATE))
}

/// `oracle auth`.
#[derive(clap::Args, Debug)]
#[command(long_about = "OAuth for a cTrader Open API application.\n\n\
Without --refresh: prints the authorization URL (client id, redirect URI, scope); open it, log in \
with your cTrader ID and allow access; the browser is sent to the redirect URI with ?code=… \
(it lives one minute). Give that code (or the whole redirect URL) with --code or at the prompt: \
it is exchanged at the token endpoint and the token pair, with its expiry, is written to the \
token file.\n\nWith --refresh: the token file's refresh token (else the secrets' \
CTRADER_REFRESH_TOKEN) is spent for a new pair, written before anything else.\n\n\
The client id and secret come from --secrets FILE, else the environment (CTRADER_CLIENT_ID / \
CTRADER_CLIENT_SECRET, or ORACLE_CTRADER_*).")]
pub struct AuthArgs {
    /// Spend the refresh token for a new pair instead of the code flow.
    #[arg(long)]
    pub refresh: bool,
    /// The authorization code, or the whole redirect URL (without it: a prompt on the terminal).
    #[arg(long, conflicts_with = "refresh")]
    pub code: Option<String>,
    /// The redirect URI registered with the application (openapi.ctrader.com/apps).
    #[arg(long, value_name = "URI")]
    pub redirect_uri: Option<String>,
    /// What the application may do: trading (view and trade) or accounts (view only).
    #[arg(long, default_value = "trading", value_parser = Scope::parse)]
    pub scope: Scope,
    /// The secrets file with CTRADER_CLIENT_ID and CTRADER_CLIENT_SECRET (default: the
    /// environment).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Where the token pair is written; its folder is created 0700 when missing and must be
    /// private [default: /var/lib/oracle-trader/executor/tokens/ctrader-token.json].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The authorization page.
    #[arg(long, default_value = oauth::DEFAULT_AUTH_URL, value_name = "URL")]
    pub auth_url: String,
    /// The token endpoint (https only).
    #[arg(long, default_value = oauth::DEFAULT_TOKEN_URL, value_name = "URL")]
    pub token_url: String,
    /// Trust exactly this CA (PEM) for the token endpoint (the simulator's `--ca-out`).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
}

/// `oracle accounts`.
#[derive(clap::Args, Debug)]
pub struct AccountsArgs {
    /// The Open API host: demo, live, or HOST[:PORT] (port 5035 by default). The list is the
    /// same on both; balances come only for the accounts of the host's kind.
    #[arg(long, default_value = "demo")]
    pub host: String,
    /// The secrets file (client id and secret; its access token when there is no token file).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// The token file [default: /var/lib/oracle-trader/executor/tokens/ctrader-token.json]; its access token is
    /// used when it exists.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust exactly this CA (PEM) (the simulator's `--ca-out`).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Only the list (no account authorization, no balance).
    #[arg(long)]
    pub no_balances: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn secrets(path: Option<&Path>) -> Result<SecretsFile, String> {
    match path {
        Some(p) => SecretsFile::read(p),
        None => Ok(SecretsFile::from_vars(std::env::vars())),
    }
}

fn where_from(file: &SecretsFile) -> String {
    if file.path.as_os_str().is_empty() {
        "the environment".into()
    } else {
        format!("secrets file {}", file.path.display())
    }
}

fn app(file: &SecretsFile) -> Result<(Secret, Secret), String> {
    let need = |k: &str| {
        file.ctrader(k).map(Secret::new).ok_or_else(|| {
            format!(
                "{}: CTRADER_{k} (or ORACLE_CTRADER_{k}) is not set: the application's credentials from openapi.ctrader.com/apps",
                where_from(file)
            )
        })
    };
    Ok((need("CLIENT_ID")?, need("CLIENT_SECRET")?))
}

fn read_ca(path: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    path.map(|p| std::fs::read(p).map_err(|e| format!("CA file {}: {e}", p.display())))
        .transpose()
}

fn describe(pair: &TokenPair, path: &Path, now: i64) -> String {
    format!(
        "token pair written to {} (access token valid until {}, {} days left; the refresh token works once)",
        path.display(),
        oracle_sim::bars::format_iso_utc(pair.expires_at_ms),
        pair.seconds_left(now).div_euclid(86_400)
    )
}

fn finish(r: Result<(), String>, what: &str) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oracle {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `oracle auth`.
pub fn run_auth(a: &AuthArgs) -> ExitCode {
    finish(auth(a, &mut std::io::stdin().lock()), "auth")
}

fn auth(a: &AuthArgs, input: &mut dyn std::io::BufRead) -> Result<(), String> {
    let file = secrets(a.secrets.as_deref())?;
    let (client_id, client_secret) = app(&file)?;
    let token_file = a.token_file.clone().unwrap_or_else(default_token_file);
    // the new pair must be storable before a code or a refresh token is spent for it
    tokenfile::prepare_folder(&token_file)?;
    let ca = read_ca(a.ca.as_deref())?;
    let endpoint = TokenEndpoint::new(&a.token_url, ca.as_deref()).map_err(|e| e.to_string())?;
    let pair = if a.refresh {
        let (refresh, from) = match tokenfile::load(&token_file)? {
            Some(p) => (p.refresh_token, format!("token file {}", token_file.display())),
            None => (
                file.ctrader("REFRESH_TOKEN").map(Secret::new).ok_or_else(|| {
                    format!(
                        "no token file at {} and no CTRADER_REFRESH_TOKEN in {}: run `oracle auth` first",
                        token_file.display(),
                        where_from(&file)
                    )
                })?,
                where_from(&file),
            ),
        };
        eprintln!("refreshing with the refresh token of {from}");
        endpoint
            .refresh(&client_id, &client_secret, &refresh, now_ms())
            .map_err(|e| e.to_string())?
    } else {
        let redirect = a.redirect_uri.as_deref().ok_or(
            "--redirect-uri is needed: the redirect URL registered with the application (openapi.ctrader.com/apps → your application)",
        )?;
        let code = match &a.code {
            Some(c) => oauth::code_from(c)?,
            None => {
                println!(
                    "Open this URL, log in with your cTrader ID and allow access:\n\n  {}\n",
                    oauth::authorization_url(&a.auth_url, &client_id, redirect, a.scope)
                );
                eprint!(
                    "Then paste the code (or the whole URL the browser was sent to; it lives one minute): "
                );
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                let n = input
                    .read_line(&mut line)
                    .map_err(|e| format!("reading the code: {e}"))?;
                if n == 0 {
                    eprintln!();
                }
                oauth::code_from(&line)?
            }
        };
        endpoint
            .exchange_code(&client_id, &client_secret, redirect, &code, now_ms())
            .map_err(|e| e.to_string())?
    };
    tokenfile::store(&token_file, &pair)?;
    println!("{}", describe(&pair, &token_file, now_ms()));
    println!(
        "next: `oracle accounts{}` lists the accounts it can trade (ctidTraderAccountId)",
        a.secrets
            .as_ref()
            .map(|s| format!(" --secrets {}", s.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// `oracle accounts`.
pub fn run_accounts(a: &AccountsArgs) -> ExitCode {
    finish(accounts(a), "accounts")
}

fn endpoint_of(host: &str) -> Result<oracle_ctrader::driver::Endpoint, String> {
    use oracle_ctrader::driver::{Endpoint, PORT};
    match host {
        "demo" => Ok(Endpoint::demo()),
        "live" => Ok(Endpoint::live()),
        other => {
            let (h, p) = match other.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("--host {other}: the port is not a number"))?,
                ),
                _ => (other, PORT),
            };
            if h.is_empty() {
                return Err(format!("--host {other}: no host"));
            }
            Ok(Endpoint {
                host: h.trim_start_matches('[').trim_end_matches(']').to_string(),
                port: p,
            })
        }
    }
}

fn accounts(a: &AccountsArgs) -> Result<(), String> {
    use oracle_ctrader::driver::TlsMode;
    let file = secrets(a.secrets.as_deref())?;
    let (client_id, client_secret) = app(&file)?;
    let token_file = a.token_file.clone().unwrap_or_else(default_token_file);
    let access = match tokenfile::load(&token_file)? {
        Some(p) => p.access_token,
        None => file.ctrader("ACCESS_TOKEN").map(Secret::new).ok_or_else(|| {
            format!(
                "no token file at {} and no CTRADER_ACCESS_TOKEN in {}: run `oracle auth` first",
                token_file.display(),
                where_from(&file)
            )
        })?,
    };
    let endpoint = endpoint_of(&a.host)?;
    let tls = match read_ca(a.ca.as_deref())? {
        Some(pem) => TlsMode::CustomCa(pem),
        None => TlsMode::WebPki,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let list = rt.block_on(oracle_ctrader::accounts::list_accounts(
        &endpoint,
        &tls,
        &client_id,
        &client_secret,
        &access,
        !a.no_balances,
        Duration::from_secs(15),
    ))?;
    print!(
        "{}",
        table(&list, &format!("{}:{}", endpoint.host, endpoint.port))
    );
    Ok(())
}

/// The list as a table, one account a line.
fn table(list: &oracle_ctrader::accounts::AccountList, host: &str) -> String {
    let mut out = format!(
        "{:<20} {:<5} {:<12} {:<16} {:>16} {:<8} note\n",
        "ctidTraderAccountId", "kind", "login", "broker", "balance", "currency"
    );
    for a in &list.accounts {
        let kind = match a.is_live {
            Some(true) => "live",
            Some(false) => "demo",
            None => "?",
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<20} {:<5} {:<12} {:<16} {:>16} {:<8} {}\n",
            a.ctid_trader_account_id,
            kind,
            opt(a.trader_login.map(|l| l.to_string())),
            opt(a.broker.clone()),
            opt(a.balance.map(|b| format!("{b:.2}"))),
            opt(a.currency.clone()),
            a.note.clone().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "{} account(s) on the token (scope {}), read at {host}; live accounts trade on {}, demo on {} (executor --account-id <ctidTraderAccountId>)\n",
        list.accounts.len(),
        list.scope.unwrap_or("?"),
        oracle_ctrader::driver::LIVE_HOST,
        oracle_ctrader::driver::DEMO_HOST,
    ));
    out
}
