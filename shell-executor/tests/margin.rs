//! The margins of a batch's entries are asked together (`Broker::expected_margins`): one round
//! trip for the whole batch, not one per entry, with the same ACKs as asking one at a time.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use oracle_executor::broker::{
    Bar, Broker, BrokerError, BrokerPosition, OrderLookup, OrderReq, OrderResult, Quote,
};
use oracle_executor::config::ExecutorConfig;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::Journal;
use oracle_executor::paper::{Fault, PaperBook};
use oracle_executor::policy::key_of;
use oracle_executor::risk::Account;
use oracle_executor::volume::SymbolSpec;
use oracle_ipc::{Message, Signal, Timeframe, parse};

/// The round trip a margin request costs the test broker.
const RTT: Duration = Duration::from_millis(20);

/// One margin request the engine made.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    /// `expected_margin` (symbol, volume, buy).
    One(String, i64, bool),
    /// `expected_margins` with these asks.
    Batch(Vec<(String, i64, bool)>),
}

/// The paper book behind a network: every margin request costs [`RTT`]. `together`: the asks of
/// one `expected_margins` share one round trip (a pipelining broker); else each ask costs one
/// (the trait's default, one request after the other).
#[derive(Debug)]
struct Remote {
    book: PaperBook,
    together: bool,
    calls: Vec<Call>,
    /// Time spent answering margin requests.
    waited: Duration,
    /// Symbols whose margin request fails.
    failing: HashSet<String>,
    /// What went to the broker, in order: `close`, `open`, `margins N`, `answers N`.
    wire: Vec<String>,
}

impl Remote {
    fn new(book: PaperBook, together: bool) -> Self {
        Remote {
            book,
            together,
            calls: Vec::new(),
            waited: Duration::ZERO,
            failing: HashSet::new(),
            wire: Vec::new(),
        }
    }

    async fn margin(&mut self, symbol: &str, volume: i64, buy: bool) -> Result<f64, BrokerError> {
        if self.failing.contains(symbol) {
            return Err(BrokerError("timeout".into()));
        }
        self.book.expected_margin(symbol, volume, buy).await
    }

    async fn round_trip(&mut self) {
        let t = Instant::now();
        tokio::time::sleep(RTT).await;
        self.waited += t.elapsed();
    }
}

impl Broker for Remote {
    type Ticket = <PaperBook as Broker>::Ticket;
    fn connected(&self) -> bool {
        self.book.connected()
    }
    async fn symbol(&mut self, name: &str) -> Option<SymbolSpec> {
        self.book.symbol(name).await
    }
    fn quote(&self, symbol: &str) -> Option<Quote> {
        self.book.quote(symbol)
    }
    async fn account(&mut self) -> Result<Account, BrokerError> {
        self.book.account().await
    }
    async fn expected_margin(
        &mut self,
        symbol: &str,
        volume: i64,
        buy: bool,
    ) -> Result<f64, BrokerError> {
        self.calls.push(Call::One(symbol.to_string(), volume, buy));
        self.round_trip().await;
        self.margin(symbol, volume, buy).await
    }
    async fn expected_margins(
        &mut self,
        asks: &[(String, i64, bool)],
    ) -> Vec<Result<f64, BrokerError>> {
        self.calls.push(Call::Batch(asks.to_vec()));
        self.wire.push(format!("margins {}", asks.len()));
        let mut out = Vec::new();
        if self.together {
            self.round_trip().await;
        }
        for (symbol, volume, buy) in asks {
            if !self.together {
                self.round_trip().await;
            }
            out.push(self.margin(symbol, *volume, *buy).await);
        }
        out
    }
    async fn submit_open(&mut self, req: &OrderReq) -> Self::Ticket {
        self.wire.push("open".into());
        self.book.submit_open(req).await
    }
    async fn submit_close(
        &mut self,
        position_id: u64,
        volume: i64,
        client_order_id: &str,
    ) -> Self::Ticket {
        self.wire.push("close".into());
        self.book
            .submit_close(position_id, volume, client_order_id)
            .await
    }
    async fn answers(&mut self, tickets: Vec<Self::Ticket>) -> Vec<OrderResult> {
        self.wire.push(format!("answers {}", tickets.len()));
        self.book.answers(tickets).await
    }
    async fn reconcile(&mut self) -> Result<Vec<BrokerPosition>, BrokerError> {
        self.book.reconcile().await
    }
    async fn find_order(
        &mut self,
        order: &OrderLookup,
    ) -> Result<Option<OrderResult>, BrokerError> {
        self.book.find_order(order).await
    }
    fn position_pnl(&self, position_id: u64) -> Option<f64> {
        Broker::position_pnl(&self.book, position_id)
    }
    async fn history(
        &mut self,
        symbol: &str,
        tf: Timeframe,
        count: u32,
    ) -> Result<Vec<Bar>, BrokerError> {
        self.book.history(symbol, tf, count).await
    }
}

/// (symbol, action, bar index).
type Sig<'a> = (&'a str, &'a str, i64);

fn parsed(lines: &[String]) -> Vec<Signal<'_>> {
    lines
        .iter()
        .map(|l| match parse(l) {
            Ok(Message::Signal(s)) => s,
            other => panic!("bad test line {l}: {other:?}"),
        })
        .collect()
}

fn remote_engine(
    dir: &std::path::Path,
    c: ExecutorConfig,
    b: PaperBook,
    together: bool,
) -> Engine<Remote> {
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let side = Side::new("live", &c, Remote::new(b, together), Some(j));
    Engine::new(c, Some(side), None, Default::default(), None)
}

fn paper_engine(dir: &std::path::Path, c: ExecutorConfig, b: PaperBook) -> Engine<PaperBook> {
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let side = Side::new("live", &c, b, Some(j));
    Engine::new(c, Some(side), None, Default::default(), None)
}

fn remote(e: &mut Engine<Remote>) -> &mut Remote {
    &mut e.live.as_mut().expect("live side").broker
}

/// The signals as one batch.
async fn batch<B: Broker>(e: &mut Engine<B>, at: i64, sigs: &[Sig<'_>]) -> Vec<String> {
    for (s, _, i) in sigs {
        e.on_bar(&key_of(s, Timeframe::M15).unwrap(), T0 + i * M15, 1.0, 0.0);
    }
    let lines: Vec<String> = sigs.iter().map(|(s, a, i)| sig(s, a, *i)).collect();
    e.on_signals(now(at), &parsed(&lines))
        .await
        .into_iter()
        .map(|a| a.line)
        .collect()
}

/// The same signals one at a time.
async fn one_by_one<B: Broker>(e: &mut Engine<B>, at: i64, sigs: &[Sig<'_>]) -> Vec<String> {
    for (s, _, i) in sigs {
        e.on_bar(&key_of(s, Timeframe::M15).unwrap(), T0 + i * M15, 1.0, 0.0);
    }
    let lines: Vec<String> = sigs.iter().map(|(s, a, i)| sig(s, a, *i)).collect();
    let mut out = Vec::new();
    for s in parsed(&lines) {
        out.push(e.on_signal(now(at), &s).await.line);
    }
    out
}

#[tokio::test]
async fn twenty_entries_ask_their_margins_in_one_round_trip() {
    let (da, db, dc) = (
        tmpdir("margin-one-trip"),
        tmpdir("margin-seq-trips"),
        tmpdir("margin-paper-seq"),
    );
    let (c, b, names) = fleet();
    let mut together = remote_engine(&da, c.clone(), b, true);
    let (_, b, _) = fleet();
    let mut apart = remote_engine(&db, c.clone(), b, false);
    let (_, b, _) = fleet();
    let mut seq = paper_engine(&dc, c, b);
    for (at, action, buy) in [
        (1, "WAIT", None),
        (2, "LONG_WEAK", Some(true)),
        (3, "SHORT_WEAK", Some(false)),
    ] {
        let sigs: Vec<Sig<'_>> = names.iter().map(|n| (n.as_str(), action, at)).collect();
        remote(&mut together).calls.clear();
        remote(&mut apart).calls.clear();
        let (w0, w1) = (remote(&mut together).waited, remote(&mut apart).waited);
        let a = batch(&mut together, at, &sigs).await;
        let b = batch(&mut apart, at, &sigs).await;
        let s = one_by_one(&mut seq, at, &sigs).await;
        assert_eq!(a, s, "bar {at}: the same ACKs as one signal at a time");
        assert_eq!(
            b, s,
            "bar {at}: the same ACKs as one margin request at a time"
        );
        let (w0, w1) = (
            remote(&mut together).waited - w0,
            remote(&mut apart).waited - w1,
        );
        let Some(buy) = buy else {
            // No entry: no margin asked.
            assert_eq!(remote(&mut together).calls, vec![]);
            assert_eq!((w0, w1), (Duration::ZERO, Duration::ZERO));
            continue;
        };
        assert!(a.iter().all(|l| l.contains("|OK|")), "{a:?}");
        // One request with the 20 entries' asks, in arrival order (at bar 3: while the 20
        // exits were on the wire).
        let asks: Vec<(String, i64, bool)> =
            names.iter().map(|n| (n.clone(), 100_000, buy)).collect();
        assert_eq!(remote(&mut together).calls, vec![Call::Batch(asks.clone())]);
        // The same call to a broker that answers each ask with its own round trip.
        assert_eq!(remote(&mut apart).calls, vec![Call::Batch(asks)]);
        assert!(w0 >= RTT && w0 < 5 * RTT, "one round trip: {w0:?}");
        assert!(w1 >= 20 * RTT, "twenty round trips: {w1:?}");
    }
    drop((together, apart, seq));
    assert_eq!(
        sorted_lines(&da.join("journal.jsonl")),
        sorted_lines(&dc.join("journal.jsonl"))
    );
    assert_eq!(
        sorted_lines(&db.join("journal.jsonl")),
        sorted_lines(&dc.join("journal.jsonl"))
    );
}

#[tokio::test]
async fn refused_entries_are_not_asked_and_a_failed_answer_refuses_only_its_entry() {
    let (da, db) = (tmpdir("margin-mix-bat"), tmpdir("margin-mix-seq"));
    let mut bat = remote_engine(&da, cfg(), book(), true);
    let mut seq = remote_engine(&db, cfg(), book(), false);
    for e in [&mut bat, &mut seq] {
        // EURUSD's spread is too wide (refused before the margin step); AAPL's margin request
        // fails.
        remote(e).book.set_quote("EURUSD", 1.10000, 1.10100);
        remote(e).failing.insert("AAPL".into());
    }
    let wait = [
        ("EURUSD", "WAIT", 1),
        ("US500", "WAIT", 1),
        ("AAPL", "WAIT", 1),
        ("GBPUSD", "WAIT", 1),
    ];
    assert_eq!(
        batch(&mut bat, 1, &wait).await,
        one_by_one(&mut seq, 1, &wait).await
    );
    remote(&mut bat).calls.clear();
    remote(&mut seq).calls.clear();
    let enter = [
        ("EURUSD", "LONG_WEAK", 2),
        ("US500", "SHORT_MODERATE", 2),
        ("AAPL", "LONG_WEAK", 2),
        ("GBPUSD", "LONG_WEAK", 2),
    ];
    let a = batch(&mut bat, 2, &enter).await;
    let b = one_by_one(&mut seq, 2, &enter).await;
    assert_eq!(a, b);
    assert!(a[0].contains("|FAIL|SPREAD|"), "{a:?}");
    assert!(a[1].contains("|OK|"), "{a:?}");
    assert!(a[2].contains("|FAIL|BROKER_DOWN|"), "{a:?}");
    assert!(a[3].contains("|FAIL|SYMBOL_DISABLED|"), "{a:?}");
    // Only the entries the plans left to check: US500 and AAPL, in one request.
    assert_eq!(
        remote(&mut bat).calls,
        vec![Call::Batch(vec![
            ("US500".into(), 30, false),
            ("AAPL".into(), 100, true)
        ])]
    );
    assert_eq!(
        remote(&mut seq).calls,
        vec![
            Call::Batch(vec![("US500".into(), 30, false)]),
            Call::Batch(vec![("AAPL".into(), 100, true)])
        ]
    );
    let pos: Vec<String> = remote(&mut bat)
        .book
        .open_positions()
        .iter()
        .map(|p| p.symbol.clone())
        .collect();
    assert_eq!(pos, vec!["US500"]);
    drop((bat, seq));
    assert_eq!(
        sorted_lines(&da.join("journal.jsonl")),
        sorted_lines(&db.join("journal.jsonl"))
    );
}

#[tokio::test]
async fn margins_asked_together_still_count_the_entries_before_them() {
    let (da, db) = (tmpdir("margin-rule-bat"), tmpdir("margin-rule-seq"));
    let mut bat = remote_engine(&da, cfg(), book(), true);
    let mut seq = paper_engine(&db, cfg(), book());
    // Leverage 1: 300 lots AAPL and 12 lots US500 need about 60,000 each; 90 % of the free
    // 100,000 fits one of them, not both. EURUSD's 0.01 lot (about 1,100) fits after AAPL.
    remote(&mut bat).book.leverage = 1.0;
    seq.live.as_mut().expect("live").broker.leverage = 1.0;
    for c in [&mut bat.cfg, &mut seq.cfg] {
        c.symbols.get_mut("AAPL").expect("AAPL").lots = [300.0, 300.0, 300.0];
        c.symbols.get_mut("US500").expect("US500").lots = [12.0, 12.0, 12.0];
    }
    let wait = [
        ("AAPL", "WAIT", 1),
        ("US500", "WAIT", 1),
        ("EURUSD", "WAIT", 1),
    ];
    let enter = [
        ("AAPL", "LONG_WEAK", 2),
        ("US500", "LONG_WEAK", 2),
        ("EURUSD", "LONG_WEAK", 2),
    ];
    batch(&mut bat, 1, &wait).await;
    one_by_one(&mut seq, 1, &wait).await;
    remote(&mut bat).calls.clear();
    let a = batch(&mut bat, 2, &enter).await;
    let b = one_by_one(&mut seq, 2, &enter).await;
    assert_eq!(a, b);
    assert!(a[0].contains("|OK|"), "{a:?}");
    assert!(a[1].contains("|FAIL|MARGIN|"), "{a:?}");
    assert!(a[2].contains("|OK|"), "{a:?}");
    assert_eq!(remote(&mut bat).calls.len(), 1);
    assert!(matches!(&remote(&mut bat).calls[0], Call::Batch(v) if v.len() == 3));
}

#[tokio::test]
async fn a_failed_exit_holds_back_its_entry_whose_margin_was_asked_with_the_others() {
    let (da, db) = (tmpdir("margin-exit-bat"), tmpdir("margin-exit-seq"));
    let mut bat = remote_engine(&da, cfg(), book(), true);
    let mut seq = paper_engine(&db, cfg(), book());
    let syms = ["EURUSD", "US500", "AAPL"];
    let s1: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "WAIT", 1)).collect();
    let s2: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "LONG_WEAK", 2)).collect();
    let s3: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "SHORT_WEAK", 3)).collect();
    for (at, sigs) in [(1, &s1), (2, &s2)] {
        assert_eq!(
            batch(&mut bat, at, sigs).await,
            one_by_one(&mut seq, at, sigs).await
        );
    }
    let faults = [
        Fault::Pass,
        Fault::Reject("MARKET_CLOSED".into()),
        Fault::Pass,
    ];
    remote(&mut bat).book.faults.extend(faults.clone());
    seq.live
        .as_mut()
        .expect("live")
        .broker
        .faults
        .extend(faults);
    remote(&mut bat).calls.clear();
    remote(&mut bat).wire.clear();
    // (As batches on both sides: the faults apply to the orders in the order they are sent.
    // The paper book asks its margins one at a time, the trait's default.)
    let a = batch(&mut bat, 3, &s3).await;
    let b = batch(&mut seq, 3, &s3).await;
    assert_eq!(a, b);
    assert!(a[0].contains("|OK|"), "{a:?}");
    assert!(a[1].contains("|FAIL|MARKET_CLOSED|"), "{a:?}");
    assert!(a[2].contains("|OK|"), "{a:?}");
    assert_eq!(
        remote(&mut bat).book.open_positions(),
        seq.live.as_ref().expect("live").broker.open_positions()
    );
    // The three entries' margins were asked together while the exits were on the wire (before
    // their answers were awaited); US500's entry was not sent.
    assert!(matches!(&remote(&mut bat).calls[..], [Call::Batch(v)] if v.len() == 3));
    assert_eq!(
        remote(&mut bat).wire,
        [
            "close",
            "close",
            "close",
            "margins 3",
            "answers 3",
            "open",
            "open",
            "answers 2"
        ]
    );
    drop((bat, seq));
    assert_eq!(
        sorted_lines(&da.join("journal.jsonl")),
        sorted_lines(&db.join("journal.jsonl"))
    );
}

/// Over `oracle-sim` behind a proxy that delays every byte by a one-way latency (a network):
/// a batch's `ExpectedMarginReq`s are in flight together.
#[cfg(feature = "live")]
mod over_the_sim {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use oracle_executor::broker::Broker;
    use oracle_executor::live::LiveBroker;
    use oracle_sim::SimHandle;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream};

    const SYMS: [&str; 3] = super::common::SIM_SYMS;
    /// One way; a round trip is twice that.
    const ONE_WAY_MS: u64 = 75;

    async fn sim() -> SimHandle {
        super::common::sim3(Vec::new()).await
    }

    /// Copies `r` to `w`, each chunk written `delay` ms after it was read, in order (requests
    /// sent together stay together: a pipe, not a stop-and-wait link).
    async fn pipe(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, delay: Arc<AtomicU64>) {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let writer = tokio::spawn(async move {
            while let Some((due, bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if w.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let due =
                tokio::time::Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    }

    /// A TCP proxy to `to` on an ephemeral loopback port, delaying both ways by `delay` ms.
    async fn proxy(to: SocketAddr, delay: Arc<AtomicU64>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let Ok(s) = TcpStream::connect(to).await else {
                    continue;
                };
                let _ = (c.set_nodelay(true), s.set_nodelay(true));
                let ((cr, cw), (sr, sw)) = (c.into_split(), s.into_split());
                tokio::spawn(pipe(cr, sw, delay.clone()));
                tokio::spawn(pipe(sr, cw, delay.clone()));
            }
        });
        port
    }

    /// A live session through `port`; with `streams`, M1 bars (and so quotes) of every symbol.
    /// The bar feed's receiver comes back with it: the caller keeps it for as long as it uses
    /// the session (what the executor's engine loop does).
    async fn session(
        s: &SimHandle,
        port: u16,
        streams: bool,
    ) -> (
        LiveBroker,
        tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
    ) {
        super::common::live_session_at(s, port, &SYMS, streams, false).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_margins_of_a_batch_are_asked_in_one_round_trip() {
        let s = sim().await;
        let delay = Arc::new(AtomicU64::new(0));
        let port = proxy(s.addr, delay.clone()).await;
        let (mut b, _feed) = session(&s, port, false).await;
        // The market holds still: both ways of asking see the same prices.
        s.with_broker(|b, now| b.set_paused(now, true))
            .await
            .expect("sim up");
        // Every symbol: two volumes, both sides (12 asks, 3 symbols).
        let mut asks: Vec<(String, i64, bool)> = Vec::new();
        for sym in SYMS {
            let spec = b.spec(sym).expect("symbol");
            for volume in [spec.min_volume, 3 * spec.min_volume] {
                for buy in [true, false] {
                    asks.push((sym.to_string(), volume, buy));
                }
            }
        }
        delay.store(ONE_WAY_MS, Ordering::SeqCst);
        let rtt = Duration::from_millis(2 * ONE_WAY_MS);
        let t = Instant::now();
        let mut one = Vec::new();
        for (sym, volume, buy) in &asks {
            one.push(b.expected_margin(sym, *volume, *buy).await);
        }
        let apart = t.elapsed();
        let t = Instant::now();
        let all = b.expected_margins(&asks).await;
        let together = t.elapsed();
        delay.store(0, Ordering::SeqCst);
        assert_eq!(all, one, "the same answers as one at a time");
        // The broker's answers: with no quote (no stream subscribed) there is no estimate.
        for (a, m) in asks.iter().zip(&all) {
            assert!(m.as_ref().is_ok_and(|m| *m > 0.0), "{a:?}: {m:?}");
        }
        assert!(b.quote("EURUSD").is_none());
        assert!(
            apart >= asks.len() as u32 * rtt,
            "the proxy costs a round trip per request: {apart:?}"
        );
        // In flight together: one round trip (one request per symbol, not one after the other,
        // which would take three).
        assert!(
            together < rtt * 5 / 2,
            "{} asks in {together:?} (round trip {rtt:?}; one at a time: {apart:?})",
            asks.len()
        );
        drop(b);
        s.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_margin_the_broker_gave_is_reused_at_the_current_price_without_asking() {
        let s = sim().await;
        let delay = Arc::new(AtomicU64::new(0));
        let port = proxy(s.addr, delay.clone()).await;
        let (mut b, _feed) = session(&s, port, true).await;
        let until = Instant::now() + Duration::from_secs(10);
        while SYMS.iter().any(|s| b.quote(s).is_none()) {
            assert!(Instant::now() < until, "no quotes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.with_broker(|b, now| b.set_paused(now, true))
            .await
            .expect("sim up");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut asks: Vec<(String, i64, bool)> = Vec::new();
        for sym in SYMS {
            let spec = b.spec(sym).expect("symbol");
            for buy in [true, false] {
                asks.push((sym.to_string(), spec.min_volume, buy));
            }
        }
        delay.store(ONE_WAY_MS, Ordering::SeqCst);
        let rtt = Duration::from_millis(2 * ONE_WAY_MS);
        let t = Instant::now();
        let first = b.expected_margins(&asks).await;
        let asked = t.elapsed();
        let t = Instant::now();
        let again = b.expected_margins(&asks).await;
        let reused = t.elapsed();
        // A volume not asked before goes to the broker.
        let other = vec![(
            SYMS[0].to_string(),
            3 * b.spec(SYMS[0]).expect("s").min_volume,
            true,
        )];
        let t = Instant::now();
        let fresh = b.expected_margins(&other).await;
        let new_volume = t.elapsed();
        // Prefetched off an entry's path: that entry's margin then needs no request.
        let pre = vec![(
            SYMS[1].to_string(),
            3 * b.spec(SYMS[1]).expect("s").min_volume,
            false,
        )];
        b.prefetch_margins(&pre).await;
        let t = Instant::now();
        let prefetched = b.expected_margins(&pre).await;
        let after_prefetch = t.elapsed();
        // A prefetch of fresh answers asks nothing.
        let t = Instant::now();
        b.prefetch_margins(&asks).await;
        let fresh_prefetch = t.elapsed();
        delay.store(0, Ordering::SeqCst);
        assert!(after_prefetch < rtt / 2, "prefetched: {after_prefetch:?}");
        assert!(
            prefetched[0].as_ref().is_ok_and(|m| *m > 0.0),
            "{prefetched:?}"
        );
        assert!(
            fresh_prefetch < rtt / 2,
            "nothing to prefetch: {fresh_prefetch:?}"
        );
        assert!(
            asked >= rtt,
            "the first answers come from the broker: {asked:?}"
        );
        assert!(reused < rtt / 2, "reused without a request: {reused:?}");
        assert!(new_volume >= rtt, "a new volume is asked: {new_volume:?}");
        assert!(fresh[0].as_ref().is_ok_and(|m| *m > 0.0), "{fresh:?}");
        for ((a, x), y) in asks.iter().zip(&first).zip(&again) {
            let (x, y) = (x.as_ref().expect("margin"), y.as_ref().expect("margin"));
            assert!((x - y).abs() <= 1e-9 * x.abs(), "{a:?}: {x} then {y}");
        }
        drop(b);
        s.shutdown().await;
    }
}
