//! The executor's Prometheus endpoint: counters, gauges and the bar → order latency histogram,
//! served as text on a **loopback** address (`docs/metrics.md`). The executor's shell owns one
//! [`Metrics`] and calls its hooks; the IPC server's counters are read through [`IpcCounters`].
//!
//! - **Config**: the `metrics` section of `executor_config.json`, `{"listen": "127.0.0.1:9464"}`;
//!   absent (or `listen` absent) = no endpoint. An address that is not loopback is refused by name
//!   ([`MetricsConfig::listen_addr`]): the figures say what the account holds, so they are scraped
//!   on the host (a local Prometheus or agent, or through an SSH tunnel).
//! - **Updates**: each hook is an atomic add or store on a pre-built metric (`prometheus-client`'s
//!   `Counter`/`Gauge` are atomics); the latency histogram takes its short lock (no allocation). A
//!   refusal's reason label is looked up in a small family (refusals are answers, not orders).
//!   What is not counted where it happens is read at scrape time: the resident set
//!   (`/proc/self/statm`) and the IPC server's counters (broker reconnects).
//! - **Serving**: a tiny HTTP/1.1 handler on Tokio: `GET /metrics` answers the OpenMetrics text
//!   (`prometheus-client`'s encoder, which Prometheus scrapes natively); anything else is a 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

/// The address the docs suggest (Prometheus' registry of exporter ports has 9464 for
/// OpenTelemetry-style exporters; any free loopback port does).
pub const SUGGESTED_LISTEN: &str = "127.0.0.1:9464";

/// The bar → order latency buckets, milliseconds.
pub const LATENCY_BUCKETS_MS: [f64; 11] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
];

/// The `metrics` section of `executor_config.json`. An unknown field is refused (a typo would
/// silently leave the endpoint off).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` on loopback (`127.0.0.1:9464`, `[::1]:9464`); `None` = no endpoint.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to bind, if any; the error names `metrics.listen` and the value at fault.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let Some(text) = &self.listen else {
            return Ok(None);
        };
        let addr: SocketAddr = text.trim().parse().map_err(|_| {
            format!("metrics.listen: {text:?} is not an IP:PORT address (e.g. {SUGGESTED_LISTEN})")
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "metrics.listen: {addr} is not a loopback address: the metrics endpoint binds to 127.0.0.1 or ::1 only (scrape it from the host, or through an SSH tunnel)"
            ));
        }
        Ok(Some(addr))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: String,
}

/// Every figure of the endpoint. One per process, shared (`Arc`) by the engine, the live broker's
/// event task and the endpoint.
pub struct Metrics {
    registry: Registry,
    bars: Counter,
    signals: Counter,
    orders_live: Counter,
    orders_paper: Counter,
    refusals: Family<ReasonLabel, Counter>,
    refused_all: AtomicU64,
    reconnects: Counter,
    disconnects: Counter,
    token_refreshes: Counter,
    equity: Gauge<f64, AtomicU64>,
    balance: Gauge<f64, AtomicU64>,
    open_positions: Gauge<i64, AtomicI64>,
    rss: Gauge<i64, AtomicI64>,
    headroom: Family<LimitLabel, Gauge<f64, AtomicU64>>,
    latency: Histogram,
    origin: Instant,
    /// Nanoseconds after `origin` of the last BAR sent to the predictor (0: none yet).
    bar_out_ns: AtomicU64,
    /// The IPC server's counters (reconnects are counted there), read at scrape time.
    ipc: OnceLock<Arc<dyn IpcCounters>>,
}

/// What a scrape reads of the IPC server's counters (the executor's `server::Metrics`).
pub trait IpcCounters: Send + Sync {
    /// Broker reconnects so far (each followed by a reconciliation).
    fn reconnects(&self) -> u64;
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("bars", &self.bars.get())
            .field("signals", &self.signals.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("oracle");
        let bars = Counter::default();
        r.register("bars", "Closed bars sent to the predictor", bars.clone());
        let signals = Counter::default();
        r.register("signals", "SIGNALs taken by the engine", signals.clone());
        let orders = Family::<SideLabel, Counter>::default();
        let orders_live = orders.get_or_create(&SideLabel { side: "live" }).clone();
        let orders_paper = orders.get_or_create(&SideLabel { side: "paper" }).clone();
        r.register(
            "orders_sent",
            "Orders put on the wire (opens and closes), by side",
            orders,
        );
        let refusals = Family::<ReasonLabel, Counter>::default();
        r.register(
            "refusals",
            "SIGNALs answered FAIL or ERR, by reason code",
            refusals.clone(),
        );
        let reconnects = Counter::default();
        r.register(
            "broker_reconnects",
            "Broker sessions back after a loss (each reconciled)",
            reconnects.clone(),
        );
        let disconnects = Counter::default();
        r.register(
            "broker_disconnects",
            "Broker sessions lost (each followed by reconnection attempts)",
            disconnects.clone(),
        );
        let token_refreshes = Counter::default();
        r.register(
            "token_refreshes",
            "Broker access tokens refreshed",
            token_refreshes.clone(),
        );
        let equity = Gauge::<f64, AtomicU64>::default();
        r.register(
            "equity",
            "Account equity at the last read, deposit currency",
            equity.clone(),
        );
        let balance = Gauge::<f64, AtomicU64>::default();
        r.register(
            "balance",
            "Account balance at the last read, deposit currency",
            balance.clone(),
        );
        let open_positions = Gauge::<i64, AtomicI64>::default();
        r.register(
            "open_positions",
            "Positions the executor holds for its models",
            open_positions.clone(),
        );
        let rss = Gauge::<i64, AtomicI64>::default();
        r.register_with_unit(
            "resident_memory",
            "Resident set size of the executor",
            Unit::Bytes,
            rss.clone(),
        );
        let headroom = Family::<LimitLabel, Gauge<f64, AtomicU64>>::default();
        r.register(
            "limit_used_percent",
            "Share of a prop-firm limit used, percent (100 = breached)",
            headroom.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS_MS);
        r.register(
            "bar_to_order_milliseconds",
            "From the last BAR sent to the predictor to an order put on the wire, milliseconds",
            latency.clone(),
        );
        Metrics {
            registry: r,
            bars,
            signals,
            orders_live,
            orders_paper,
            refusals,
            refused_all: AtomicU64::new(0),
            reconnects,
            disconnects,
            token_refreshes,
            equity,
            balance,
            open_positions,
            rss,
            headroom,
            latency,
            origin: Instant::now(),
            bar_out_ns: AtomicU64::new(0),
            ipc: OnceLock::new(),
        }
    }

    /// The IPC server's counters, read at scrape time (broker reconnects).
    pub fn attach_ipc<C: IpcCounters + 'static>(&self, ipc: Arc<C>) {
        let _ = self.ipc.set(ipc);
    }

    /// A closed bar went to the predictor: counted, and the latency clock starts.
    pub fn bar_out(&self) {
        self.bars.inc();
        let ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.bar_out_ns.store(ns.max(1), Ordering::Relaxed);
    }

    /// `n` SIGNALs taken by the engine.
    pub fn signals_in(&self, n: usize) {
        self.signals.inc_by(n as u64);
    }

    /// An order put on the wire by the `live` or `paper` side; its latency from the last BAR
    /// sent (when one was).
    pub fn order_sent(&self, side: &str) {
        if side == "paper" {
            self.orders_paper.inc();
        } else {
            self.orders_live.inc();
        }
        let out = self.bar_out_ns.load(Ordering::Relaxed);
        if out > 0 {
            let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.latency.observe(now.saturating_sub(out) as f64 / 1e6);
        }
    }

    /// A SIGNAL answered FAIL/ERR with `reason`.
    pub fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
        self.refused_all.fetch_add(1, Ordering::Relaxed);
    }

    /// The broker session was lost.
    pub fn broker_lost(&self) {
        self.disconnects.inc();
    }

    /// Broker tokens refreshed.
    pub fn token_refreshed(&self) {
        self.tokens_refreshed(1);
    }

    /// `n` broker access tokens refreshed (those made before the metrics were attached).
    pub fn tokens_refreshed(&self, n: u64) {
        self.token_refreshes.inc_by(n);
    }

    /// The account as last read.
    pub fn account(&self, balance: f64, equity: f64) {
        self.balance.set(balance);
        self.equity.set(equity);
    }

    /// Positions held now.
    pub fn positions(&self, n: usize) {
        self.open_positions
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A prop-firm limit's used share (percent).
    pub fn limit_used(&self, limit: &str, used_pct: f64) {
        self.headroom
            .get_or_create(&LimitLabel {
                limit: limit.to_string(),
            })
            .set(used_pct);
    }

    /// Orders sent so far (both sides).
    pub fn orders_total(&self) -> u64 {
        self.orders_live.get() + self.orders_paper.get()
    }

    /// Refusals so far (every reason).
    pub fn refusals_total(&self) -> u64 {
        self.refused_all.load(Ordering::Relaxed)
    }

    /// The last balance and equity set (0 before the first read).
    pub fn last_account(&self) -> (f64, f64) {
        (self.balance.get(), self.equity.get())
    }

    /// Positions held at the last count.
    pub fn last_positions(&self) -> u64 {
        u64::try_from(self.open_positions.get()).unwrap_or(0)
    }

    /// The text a scrape gets (OpenMetrics, ends with `# EOF`).
    pub fn render(&self) -> String {
        if let Some(rss) = resident_bytes() {
            self.rss.set(rss);
        }
        if let Some(ipc) = self.ipc.get() {
            self.reconnects
                .inner()
                .store(ipc.reconnects(), Ordering::Relaxed);
        }
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Resident set size from `/proc/self/statm` (its second field, in pages), bytes.
pub fn resident_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> i64 {
    // The kernel's page size is in the auxiliary vector; `/proc/self/smaps` would be heavier.
    // Every Linux target this runs on (x86_64, aarch64 with 4 KiB pages) uses 4096; an aarch64
    // kernel with 16/64 KiB pages would under-report, said in docs/metrics.md.
    4096
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `cfg`'s address (if any) and serves `metrics` there until the process ends; `None` when
/// the endpoint is off. The error names `metrics.listen`.
pub async fn start(
    cfg: &MetricsConfig,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = cfg.listen_addr().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: bind {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    info!(%bound, "metrics endpoint listening (GET /metrics)");
    tokio::spawn(serve(listener, metrics));
    Ok(Some(bound))
}

/// Answers scrapes on `listener` (one short task per connection).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), answer(stream, &m)).await {
                warn!(error = %e, "metrics scrape timed out");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, m: &Metrics) {
    // The request head only (a GET has no body); 8 KiB at most.
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", CONTENT_TYPE, m.render()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only /metrics is served here\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET /metrics only\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_off_loopback_is_refused_by_name() {
        let c = |s: &str| MetricsConfig {
            listen: Some(s.to_string()),
        };
        assert_eq!(MetricsConfig::default().listen_addr(), Ok(None));
        assert_eq!(
            c("127.0.0.1:9464").listen_addr(),
            Ok(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert!(c("[::1]:9464").listen_addr().unwrap().is_some());
        let e = c("0.0.0.0:9464").listen_addr().unwrap_err();
        assert!(
            e.starts_with("metrics.listen: 0.0.0.0:9464 is not a loopback address"),
            "{e}"
        );
        let e = c("192.168.1.5:9464").listen_addr().unwrap_err();
        assert!(e.contains("192.168.1.5:9464"), "{e}");
        let e = c("localhost").listen_addr().unwrap_err();
        assert!(
            e.starts_with("metrics.listen: \"localhost\" is not an IP:PORT"),
            "{e}"
        );
        let e = serde_json::from_str::<MetricsConfig>(r#"{"listn": "127.0.0.1:1"}"#).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn the_text_names_each_metric_with_the_values_set() {
        let m = Metrics::new();
        m.bar_out();
        m.bar_out();
        m.signals_in(3);
        m.order_sent("live");
        m.order_sent("paper");
        m.order_sent("live");
        m.refused("SPREAD");
        m.refused("SPREAD");
        m.refused("BROKER_NOT_ENOUGH_MONEY");
        m.token_refreshed();
        m.broker_lost();
        m.account(100_000.5, 99_990.25);
        m.positions(4);
        m.limit_used("daily loss", 12.5);
        let t = m.render();
        for want in [
            "oracle_bars_total 2\n",
            "oracle_signals_total 3\n",
            "oracle_orders_sent_total{side=\"live\"} 2\n",
            "oracle_orders_sent_total{side=\"paper\"} 1\n",
            "oracle_refusals_total{reason=\"SPREAD\"} 2\n",
            "oracle_refusals_total{reason=\"BROKER_NOT_ENOUGH_MONEY\"} 1\n",
            "oracle_token_refreshes_total 1\n",
            "oracle_broker_reconnects_total 0\n",
            "oracle_broker_disconnects_total 1\n",
            "oracle_balance 100000.5\n",
            "oracle_equity 99990.25\n",
            "oracle_open_positions 4\n",
            "oracle_limit_used_percent{limit=\"daily loss\"} 12.5\n",
            "oracle_bar_to_order_milliseconds_count 3\n",
            "oracle_bar_to_order_milliseconds_bucket{le=\"0.5\"}",
            "# EOF",
        ] {
            assert!(t.contains(want), "{want:?} missing from:\n{t}");
        }
        assert_eq!(m.orders_total(), 3);
        assert_eq!(m.refusals_total(), 3);
        let rss = t
            .lines()
            .find_map(|l| l.strip_prefix("oracle_resident_memory_bytes "))
            .and_then(|v| v.parse::<i64>().ok())
            .expect("rss line");
        assert!(rss > 0, "{t}");
    }

    #[test]
    fn a_scrape_reads_the_reconnects_the_ipc_server_counted() {
        struct Ipc(std::sync::atomic::AtomicU64);
        impl IpcCounters for Ipc {
            fn reconnects(&self) -> u64 {
                self.0.load(Ordering::Relaxed)
            }
        }
        let m = Metrics::new();
        let ipc = Arc::new(Ipc(AtomicU64::new(2)));
        m.attach_ipc(ipc.clone());
        assert!(m.render().contains("oracle_broker_reconnects_total 2\n"));
        ipc.0.store(5, Ordering::Relaxed);
        assert!(m.render().contains("oracle_broker_reconnects_total 5\n"));
    }

    #[test]
    fn no_latency_is_observed_before_a_bar_went_out() {
        let m = Metrics::new();
        m.order_sent("live");
        assert!(
            m.render()
                .contains("oracle_bar_to_order_milliseconds_count 0\n")
        );
    }
}
