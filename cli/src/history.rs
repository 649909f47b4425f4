//! `oracle history`: the broker's own closed bars of one symbol and timeframe over a span, as a
//! bar file (`docs/contract.md` §1), so a model is trained on what it will trade. The download
//! is `oracle_ctrader::history` (paced at 5 history requests a second); this is its command line:
//! the refusals that need no broker (timeframe, dates), the credentials (the executor's secrets
//! rule and the token file's newest pair) and the summary line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oracle_ctrader::Secret;
use oracle_ctrader::driver::{ClientConfig, Endpoint, TlsMode};
use oracle_ctrader::history;
use oracle_ctrader::proto::ProtoOaTrendbarPeriod;
use oracle_ctrader::tokenfile::{self, TokenPair};
use oracle_ipc::Timeframe;
use oracle_secrets::SecretsFile;

/// `oracle history`.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Downloads the broker's own closed bars of one symbol and timeframe \
into a bar file (time,open,high,low,close,volume; docs/contract.md §1), the file `train --bars`, \
`oracle backtest --bars` and `oracle replay` read. Bars that opened at or after --from and ended \
by --to; the bar still forming at --to (or at the broker's clock) is left out. At most 5 \
history requests a second (cTrader's limit). The file is written whole or not at all (a \
temporary file renamed over --out).\n\nCredentials as the executor's: --secrets FILE, else the \
environment (CTRADER_<NAME> or ORACLE_CTRADER_<NAME>), with the token file's access token when \
it is the newest pair. The refresh token is never spent here: after `oracle auth --refresh` run \
it again."
)]
pub struct HistoryArgs {
    /// The broker's symbol name (as in its symbol list: EURUSD, US500.cash, …).
    #[arg(long)]
    pub symbol: String,
    /// The timeframe (M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1).
    #[arg(long)]
    pub timeframe: String,
    /// The span's start: YYYY-MM-DD (midnight UTC) or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// The span's end (exclusive; bars that ended by then): YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    /// The bar file to write (its folder is created).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The broker HOST:PORT, as the executor's --broker (demo.ctraderapi.com:5035,
    /// live.ctraderapi.com:5035, or the simulator's address).
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: String,
    /// The account (ctidTraderAccountId). Default: the secrets file's or the environment's
    /// ORACLE_CTRADER_ACCOUNT_ID (`oracle accounts` lists them).
    #[arg(long)]
    pub account_id: Option<i64>,
    /// The secrets env file (client id and secret; tokens when there is no token file). Default:
    /// the environment.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// The token file [default: /var/lib/oracle-trader/executor/tokens/ctrader-token.json]; its
    /// pair is used when it is newer than the secrets file's.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust exactly this CA (PEM) for the broker (the simulator's --ca-out).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Skip TLS verification (loopback brokers only).
    #[arg(long)]
    pub insecure_local: bool,
    /// Keep the bars of the span already in --out and download only what lies before and after
    /// them (an interrupted or extended download); the broker's bars at both ends must equal the
    /// file's, else the span is downloaded whole.
    #[arg(long)]
    pub resume: bool,
}

/// `oracle history`.
pub fn run_history(a: &HistoryArgs) -> ExitCode {
    match history_cmd(a) {
        Ok(line) => {
            eprintln!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oracle history: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One bar as a line of the bar file (docs/contract.md §1), prices with `digits` decimals, no
/// newline.
pub fn line_of(b: &oracle_ctrader::Bar, digits: u32) -> String {
    let mut s = String::with_capacity(56);
    oracle_model::write_time(&mut s, b.open_time);
    for p in [b.open, b.high, b.low, b.close] {
        s.push(',');
        s.push_str(&history::format_price(p, digits));
    }
    s.push(',');
    s.push_str(&b.volume.to_string());
    s
}

/// The bar file: the header, then one line each.
fn file_of(lines: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from(oracle_model::BAR_HEADER);
    s.push('\n');
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// `--resume`: the lines of the bar file already at `path` that lie in the span (opened at or
/// after `from`, ended by `to`), with their times. `None` when there is no such file, or it is
/// not a bar file every line of which the grammar accepts (then it is downloaded whole).
fn kept_lines(path: &Path, len: i64, from: i64, to: i64) -> Option<Vec<(i64, String)>> {
    let bytes = std::fs::read(path).ok()?;
    let reader = oracle_model::BarReader::new(bytes.as_slice()).ok()?;
    let bars: Vec<_> = reader.collect::<Result<_, _>>().ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let lines = text
        .lines()
        .skip(1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty());
    let kept: Vec<(i64, String)> = bars
        .iter()
        .zip(lines)
        .map(|(b, l)| (b.bar.time, l.to_string()))
        .filter(|(t, _)| *t >= from && t + len <= to)
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// What the download brought: the file's lines, the requests, the server's time, how many lines
/// were kept from the file already there, and why it was not resumed.
struct Fetched {
    lines: Vec<(i64, String)>,
    requests: usize,
    server_time: i64,
    kept: usize,
    not_resumed: Option<String>,
}

/// The span's lines: with `kept` (`--resume`), only what lies before its first and after its
/// last line is downloaded, and the broker's bars at those two must equal the kept lines (the
/// same symbol, digits and prices), else the whole span is downloaded.
#[allow(clippy::too_many_arguments)]
async fn fetch(
    client: &oracle_ctrader::driver::Client,
    account: i64,
    sym: &history::BrokerSymbol,
    period: ProtoOaTrendbarPeriod,
    len: i64,
    (from, to): (i64, i64),
    kept: Option<Vec<(i64, String)>>,
    now: i64,
) -> Result<Fetched, history::HistoryError> {
    let lines = |bars: &[oracle_ctrader::Bar]| -> Vec<(i64, String)> {
        bars.iter()
            .map(|b| (b.open_time, line_of(b, sym.digits)))
            .collect()
    };
    if let Some(k) = kept {
        let (t0, l0) = k[0].clone();
        let (t1, l1) = k[k.len() - 1].clone();
        let mut requests = 0;
        let head = if t0 > from {
            let d = history::download(client, account, sym.id, period, from, t0 + len, now).await?;
            requests += d.requests;
            lines(&d.bars)
        } else {
            vec![(t0, l0.clone())]
        };
        let d = history::download(client, account, sym.id, period, t1, to, now).await?;
        requests += d.requests;
        let tail = lines(&d.bars);
        let same = |part: &[(i64, String)], t: i64, l: &str| {
            part.iter().find(|(x, _)| *x == t).map(|(_, x)| x.as_str()) == Some(l)
        };
        if same(&head, t0, &l0) && same(&tail, t1, &l1) {
            let n = k.len();
            let mut all: Vec<(i64, String)> = head.into_iter().filter(|(t, _)| *t < t0).collect();
            all.extend(k);
            all.extend(tail.into_iter().filter(|(t, _)| *t > t1));
            return Ok(Fetched {
                lines: all,
                requests,
                server_time: d.server_time,
                kept: n,
                not_resumed: None,
            });
        }
        let not_resumed = Some(format!(
            "the file there differs from the broker's bars at {} or {}: downloaded whole",
            oracle_model::format_time(t0),
            oracle_model::format_time(t1)
        ));
        let d = history::download(client, account, sym.id, period, from, to, now).await?;
        return Ok(Fetched {
            lines: lines(&d.bars),
            requests: requests + d.requests,
            server_time: d.server_time,
            kept: 0,
            not_resumed,
        });
    }
    let d = history::download(client, account, sym.id, period, from, to, now).await?;
    Ok(Fetched {
        lines: lines(&d.bars),
        requests: d.requests,
        server_time: d.server_time,
        kept: 0,
        not_resumed: None,
    })
}

/// `--timeframe`, parsed once into the timeframe the command carries: one a model may have
/// (core's streamed timeframes, the loader's `SUPPORTED_TIMEFRAMES`). Its trendbar period is
/// `oracle_ctrader`'s one timeframe <-> period map (`ProtoOaTrendbarPeriod::from`).
pub fn timeframe_of(tf: &str) -> Result<Timeframe, String> {
    Timeframe::from_name(tf)
        .filter(|t| t.is_streamed())
        .ok_or_else(|| {
            format!(
                "--timeframe {tf:?} is not one a model may have: one of {}",
                oracle_model::SUPPORTED_TIMEFRAMES.join(", ")
            )
        })
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` → Unix seconds.
pub fn parse_date(flag: &str, s: &str) -> Result<i64, String> {
    let t = if s.len() == 10 {
        oracle_model::parse_time(&format!("{s}T00:00:00Z"))
    } else {
        oracle_model::parse_time(s)
    };
    t.ok_or_else(|| format!("{flag} {s:?} is not a date: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"))
}

/// `--from`/`--to` checked: the start strictly before the end.
pub fn span(from: &str, to: &str) -> Result<(i64, i64), String> {
    let (f, t) = (parse_date("--from", from)?, parse_date("--to", to)?);
    if f >= t {
        return Err(format!(
            "--from {from} is not before --to {to}: the span is empty"
        ));
    }
    Ok((f, t))
}

fn endpoint_of(broker: &str) -> Result<Endpoint, String> {
    let (host, port) = broker.rsplit_once(':').ok_or_else(|| {
        format!("--broker {broker:?}: expected HOST:PORT (e.g. demo.ctraderapi.com:5035)")
    })?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("--broker {broker:?}: the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("--broker {broker:?}: no host"));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

fn where_from(file: &SecretsFile) -> String {
    if file.path.as_os_str().is_empty() {
        "the environment".into()
    } else {
        format!("secrets file {}", file.path.display())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The credentials: the application's from the secrets (file or environment), the access token
/// of the newest pair (token file, else the secrets' — stamped as obtained at 0).
fn credentials(
    file: &SecretsFile,
    token_file: &Path,
) -> Result<oracle_ctrader::Credentials, String> {
    let need = |k: &str| {
        file.ctrader(k).map(Secret::new).ok_or_else(|| {
            format!(
                "{}: CTRADER_{k} (or ORACLE_CTRADER_{k}) is not set",
                where_from(file)
            )
        })
    };
    let (client_id, client_secret) = (need("CLIENT_ID")?, need("CLIENT_SECRET")?);
    let stored = tokenfile::load(token_file)?;
    let from_secrets = file.ctrader("ACCESS_TOKEN").map(|a| TokenPair {
        access_token: Secret::new(a),
        refresh_token: Secret::new(file.ctrader("REFRESH_TOKEN").unwrap_or_default()),
        obtained_at_ms: 0,
        expires_at_ms: i64::MAX,
    });
    let pair = tokenfile::newest(stored.iter().chain(from_secrets.iter())).ok_or_else(|| {
        format!(
            "no token file at {} and no CTRADER_ACCESS_TOKEN in {}: run `oracle auth` first",
            token_file.display(),
            where_from(file)
        )
    })?;
    if !pair.is_valid_at(now_ms()) {
        return Err(format!(
            "the access token of the token file {} expired: run `oracle auth --refresh`",
            token_file.display()
        ));
    }
    Ok(oracle_ctrader::Credentials {
        client_id,
        client_secret,
        access_token: pair.access_token.clone(),
        refresh_token: None,
    })
}

fn history_cmd(a: &HistoryArgs) -> Result<String, String> {
    // What needs no broker first, one line each.
    let tf = timeframe_of(&a.timeframe)?;
    let period = ProtoOaTrendbarPeriod::from(tf);
    let (from, to) = span(&a.from, &a.to)?;
    let endpoint = endpoint_of(&a.broker)?;
    let file = match &a.secrets {
        Some(p) => SecretsFile::read(p)?,
        None => SecretsFile::from_vars(std::env::vars()),
    };
    let token_file = a
        .token_file
        .clone()
        .unwrap_or_else(crate::auth::default_token_file);
    let creds = credentials(&file, &token_file)?;
    let env = |k: &str| std::env::var(k).ok();
    let account = oracle_secrets::account_id(a.account_id, a.secrets.as_ref().map(|_| &file), &env)?
        .ok_or_else(|| {
            format!(
                "no account: --account-id, or ORACLE_CTRADER_ACCOUNT_ID in {} (`oracle accounts` lists them)",
                where_from(&file)
            )
        })?;
    let tls = match (&a.ca, a.insecure_local) {
        (Some(p), _) => {
            TlsMode::CustomCa(std::fs::read(p).map_err(|e| format!("--ca {}: {e}", p.display()))?)
        }
        (None, true) => TlsMode::InsecureLocal,
        (None, false) => TlsMode::WebPki,
    };
    let shown = format!("{}:{}", endpoint.host, endpoint.port);
    let cfg = ClientConfig::new(endpoint, tls, history::session_config(creds, account));
    let per_second = cfg.session.max_history_per_window;
    // A streamed timeframe: a fixed length.
    let len = tf.seconds();
    let kept = if a.resume {
        kept_lines(&a.out, len, from, to)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let got = rt.block_on(async {
        let client = history::connect_ready(cfg, Duration::from_secs(30)).await?;
        let r = async {
            let sym = history::find_symbol(&client, account, &a.symbol).await?;
            let f = fetch(
                &client,
                account,
                &sym,
                period,
                len,
                (from, to),
                kept,
                now_ms().div_euclid(1000),
            )
            .await?;
            Ok::<_, history::HistoryError>((sym, f))
        }
        .await;
        client.close().await;
        r
    });
    let (sym, f) = got.map_err(|e| format!("{shown}: {e}"))?;
    if let Some(why) = &f.not_resumed {
        eprintln!("oracle history: {}: {why}", a.out.display());
    }
    let (Some(first), Some(last)) = (f.lines.first(), f.lines.last()) else {
        return Err(format!(
            "{shown} has no closed {} {} bar between {} and {} (its clock: {}); nothing written",
            sym.name,
            tf,
            oracle_model::format_time(from),
            oracle_model::format_time(to),
            oracle_model::format_time(f.server_time)
        ));
    };
    let (first, last) = (first.0, last.0);
    let n = f.lines.len();
    history::write_atomic(&a.out, &file_of(f.lines.into_iter().map(|(_, l)| l)))?;
    let kept = if f.kept > 0 {
        format!(", {} kept from the file there", f.kept)
    } else {
        String::new()
    };
    Ok(format!(
        "{} {}: {} closed bars {} … {} from {shown} written to {} ({} GetTrendbarsReq, at most {} a second{kept})",
        sym.name,
        tf,
        n,
        oracle_model::format_time(first),
        oracle_model::format_time(last),
        a.out.display(),
        f.requests,
        per_second,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_whose_start_is_not_before_its_end_is_refused() {
        let e = span("2024-03-01", "2024-02-01").unwrap_err();
        assert_eq!(
            e,
            "--from 2024-03-01 is not before --to 2024-02-01: the span is empty"
        );
        assert!(span("2024-02-01", "2024-02-01").is_err());
        assert_eq!(
            span("2024-02-01", "2024-02-01T01:00:00Z"),
            Ok((1_706_745_600, 1_706_749_200))
        );
        assert!(
            parse_date("--to", "2024-02-30")
                .unwrap_err()
                .contains("--to")
        );
    }

    #[test]
    fn the_bar_file_is_the_contracts_grammar() {
        let bar = oracle_ctrader::Bar {
            open_time: 1_492_592_400,
            open: 107_160,
            high: 107_220,
            low: 107_083,
            close: 107_219,
            volume: 1413,
        };
        assert_eq!(
            file_of([line_of(&bar, 5)]),
            "time,open,high,low,close,volume\n2017-04-19T09:00:00Z,1.07160,1.07220,1.07083,1.07219,1413\n"
        );
    }

    #[test]
    fn a_timeframe_no_model_may_have_is_refused() {
        let period_of = |tf: &str| timeframe_of(tf).map(ProtoOaTrendbarPeriod::from);
        assert_eq!(period_of("H1"), Ok(ProtoOaTrendbarPeriod::H1));
        for tf in Timeframe::STREAMED {
            assert_eq!(timeframe_of(tf.as_str()), Ok(tf));
            assert_eq!(period_of(tf.as_str()), Ok(ProtoOaTrendbarPeriod::from(tf)));
        }
        for bad in ["MN1", "H2", "h1", ""] {
            let e = timeframe_of(bad).unwrap_err();
            assert!(e.starts_with(&format!("--timeframe {bad:?}")), "{e}");
            assert!(e.contains("M1, M2"), "{e}");
        }
    }
}
