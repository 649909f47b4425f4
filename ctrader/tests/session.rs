//! Sans-IO session tests on a virtual clock: no sockets, no sleeps. A scripted in-memory server
//! answers the session's frames; time only moves when the test says so.

// ProtoOAGetTrendbarsRes.timestamp is deprecated, but old clients (SDK 0.9.2) require it.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use oracle_ctrader::frame::FrameDecoder;
use oracle_ctrader::proto::*;
use oracle_ctrader::session::*;
use oracle_ctrader::units::{Bar, encode_trendbar};
use oracle_ctrader::{Credentials, Secret};

const ACC: i64 = 4242;
const SYM: i64 = 1;
const T0_UTC_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000 + 60_000 * 10; // whole minute

fn creds(refresh: bool) -> Credentials {
    Credentials {
        client_id: Secret::new("CLIENT-ID-xyz"),
        client_secret: Secret::new("CLIENT-SECRET-abc"),
        access_token: Secret::new("ACCESS-TOKEN-1"),
        refresh_token: refresh.then(|| Secret::new("REFRESH-TOKEN-1")),
    }
}

fn bar(open_time: i64, base: i64) -> Bar {
    Bar {
        open_time,
        open: base + 3,
        high: base + 9,
        low: base,
        close: base + 5,
        volume: 10,
    }
}

/// Scripted server + virtual clock.
struct Pair {
    s: Session,
    t0: Instant,
    now: Instant,
    connected: bool,
    connects: Vec<Duration>,
    accept_connect: bool,
    decoder: FrameDecoder,
    /// (time since t0, message) for every client message.
    sent: Vec<(Duration, Envelope)>,
    events: Vec<(Duration, Event)>,
    // Server behaviour.
    auto_auth: bool,
    wrong_secret: bool,
    silent: HashSet<u32>,
    history: BTreeMap<(i64, i32), Vec<Bar>>,
    history_hidden: HashSet<i64>,
    freq_errors: usize,
    server_heartbeats: bool,
    last_server_hb: Duration,
    account_auth_error: Option<&'static str>,
    /// Answers to the next ApplicationAuthReqs, in order (then the normal answer).
    app_auth_errors: std::collections::VecDeque<ProtoOaErrorRes>,
    /// Answer NewOrderReqs: the next errors in order, then ORDER_FILLED (else: no answer).
    answer_orders: bool,
    order_errors: std::collections::VecDeque<ProtoOaErrorRes>,
    /// The server's clock runs this far ahead of the client's (a replay).
    ahead_s: i64,
    /// The latest time the server stamped a spot with (see [`server_tick`]).
    server_clock: i64,
}

impl Pair {
    fn new(cfg_edit: impl FnOnce(&mut SessionConfig)) -> Self {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(creds(true), ACC);
        cfg_edit(&mut cfg);
        Pair {
            s: Session::new(cfg, t0, T0_UTC_MS),
            t0,
            now: t0,
            connected: false,
            connects: vec![],
            accept_connect: true,
            decoder: FrameDecoder::default(),
            sent: vec![],
            events: vec![],
            auto_auth: true,
            wrong_secret: false,
            silent: HashSet::new(),
            history: BTreeMap::new(),
            history_hidden: HashSet::new(),
            freq_errors: 0,
            server_heartbeats: true,
            last_server_hb: Duration::ZERO,
            account_auth_error: None,
            app_auth_errors: Default::default(),
            answer_orders: false,
            order_errors: Default::default(),
            ahead_s: 0,
            server_clock: 0,
        }
    }

    fn el(&self) -> Duration {
        self.now - self.t0
    }

    fn utc_s(&self) -> i64 {
        T0_UTC_MS / 1000 + self.el().as_secs() as i64
    }

    /// The server's clock.
    fn server_utc_s(&self) -> i64 {
        (self.utc_s() + self.ahead_s).max(self.server_clock)
    }

    /// Delivers a server message.
    fn deliver(&mut self, payload: impl Into<Payload>, id: Option<String>) {
        if !self.connected {
            return;
        }
        let env = Envelope::new(payload, id);
        let bytes = oracle_ctrader::frame::encode_envelope(&env);
        // Feed in two chunks to exercise reassembly.
        let mid = bytes.len() / 2;
        self.s.handle_bytes(self.now, &bytes[..mid]);
        self.s.handle_bytes(self.now, &bytes[mid..]);
        self.drive();
    }

    /// Runs transmits/events to quiescence (the server answers instantly).
    fn drive(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.s.poll_event() {
                self.events.push((self.el(), ev));
                progressed = true;
            }
            if let Some(t) = self.s.poll_transmit() {
                progressed = true;
                match t {
                    Transmit::Connect => {
                        self.connects.push(self.el());
                        if self.accept_connect {
                            self.connected = true;
                            self.decoder = FrameDecoder::default();
                            self.s.handle_connected(self.now);
                        } else {
                            self.s.handle_connect_failed(self.now, "refused".into());
                        }
                    }
                    Transmit::Close => self.connected = false,
                    Transmit::Bytes(b) => {
                        assert!(self.connected, "bytes written while not connected");
                        self.decoder.feed(&b);
                        while let Some(f) = self.decoder.next_frame().unwrap() {
                            let env = Envelope::decode(&f).unwrap();
                            self.sent.push((self.el(), env.clone()));
                            self.serve(env);
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn serve(&mut self, env: Envelope) {
        let id = env.client_msg_id.clone();
        if self.silent.contains(&env.payload.payload_type()) {
            return;
        }
        match env.payload {
            Payload::ApplicationAuthReq(_)
                if self.auto_auth && !self.app_auth_errors.is_empty() =>
            {
                let e = self.app_auth_errors.pop_front().unwrap();
                self.deliver(e, id);
            }
            Payload::NewOrderReq(r) if self.answer_orders => {
                if let Some(e) = self.order_errors.pop_front() {
                    self.deliver(e, id);
                } else {
                    self.deliver(
                        ProtoOaExecutionEvent {
                            ctid_trader_account_id: ACC,
                            execution_type: ProtoOaExecutionType::OrderFilled as i32,
                            order: Some(ProtoOaOrder {
                                trade_data: ProtoOaTradeData {
                                    symbol_id: r.symbol_id,
                                    volume: r.volume,
                                    trade_side: r.trade_side,
                                    ..Default::default()
                                },
                                client_order_id: r.client_order_id,
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        id,
                    );
                }
            }
            Payload::ApplicationAuthReq(r) if self.auto_auth => {
                if self.wrong_secret || r.client_secret != "CLIENT-SECRET-abc" {
                    self.deliver(oa_error("CH_CLIENT_AUTH_FAILURE"), id);
                    self.connected = false;
                    self.s.handle_disconnected(self.now, "server closed".into());
                    self.drive();
                } else {
                    self.deliver(ProtoOaApplicationAuthRes::default(), id);
                }
            }
            Payload::AccountAuthReq(r) if self.auto_auth => {
                if let Some(code) = self.account_auth_error.take() {
                    self.deliver(oa_error(code), id);
                } else {
                    self.deliver(
                        ProtoOaAccountAuthRes {
                            payload_type: None,
                            ctid_trader_account_id: r.ctid_trader_account_id,
                        },
                        id,
                    );
                }
            }
            Payload::RefreshTokenReq(_) => self.deliver(
                ProtoOaRefreshTokenRes {
                    payload_type: None,
                    access_token: "ACCESS-TOKEN-2".into(),
                    token_type: "bearer".into(),
                    expires_in: 2_628_000,
                    refresh_token: "REFRESH-TOKEN-2".into(),
                },
                id,
            ),
            Payload::SubscribeSpotsReq(_) => self.deliver(
                ProtoOaSubscribeSpotsRes {
                    payload_type: None,
                    ctid_trader_account_id: ACC,
                },
                id,
            ),
            Payload::SubscribeLiveTrendbarReq(_) => self.deliver(
                ProtoOaSubscribeLiveTrendbarRes {
                    payload_type: None,
                    ctid_trader_account_id: ACC,
                },
                id,
            ),
            Payload::UnsubscribeLiveTrendbarReq(_) => self.deliver(
                ProtoOaUnsubscribeLiveTrendbarRes {
                    payload_type: None,
                    ctid_trader_account_id: ACC,
                },
                id,
            ),
            Payload::UnsubscribeSpotsReq(_) => self.deliver(
                ProtoOaUnsubscribeSpotsRes {
                    payload_type: None,
                    ctid_trader_account_id: ACC,
                },
                id,
            ),
            Payload::GetTrendbarsReq(r) => {
                if self.freq_errors > 0 {
                    self.freq_errors -= 1;
                    let mut e = oa_error("REQUEST_FREQUENCY_EXCEEDED");
                    e.retry_after = Some(2);
                    self.deliver(e, id);
                    return;
                }
                let from = r.from_timestamp.unwrap() / 1000;
                let to = r.to_timestamp.unwrap() / 1000;
                let now = self.server_utc_s();
                // Inclusive of both ends on purpose (the client must filter); never the bar
                // still forming at the server's "now".
                let bars: Vec<ProtoOaTrendbar> = self
                    .history
                    .get(&(r.symbol_id, r.period))
                    .into_iter()
                    .flatten()
                    .filter(|b| b.open_time >= from && b.open_time <= to && b.open_time + 60 <= now)
                    .filter(|b| !self.history_hidden.contains(&b.open_time))
                    .map(|b| encode_trendbar(b, ProtoOaTrendbarPeriod::M1).unwrap())
                    .collect();
                self.deliver(
                    ProtoOaGetTrendbarsRes {
                        payload_type: None,
                        ctid_trader_account_id: ACC,
                        period: r.period,
                        timestamp: Some(r.to_timestamp.unwrap()),
                        trendbar: bars,
                        symbol_id: Some(r.symbol_id),
                        has_more: Some(false),
                    },
                    id,
                );
            }
            Payload::TraderReq(_) => self.deliver(
                ProtoOaTraderRes {
                    payload_type: None,
                    ctid_trader_account_id: ACC,
                    trader: ProtoOaTrader {
                        ctid_trader_account_id: ACC,
                        balance: 1_000_000,
                        deposit_asset_id: 1,
                        ..Default::default()
                    },
                },
                id,
            ),
            Payload::HeartbeatEvent(_) => {}
            _ => {}
        }
    }

    /// Advances virtual time to `el` (since t0), firing every timer on the way.
    fn advance_to(&mut self, el: Duration) {
        let target = self.t0 + el;
        loop {
            self.server_heartbeat_tick(target);
            let next = self.s.poll_timeout();
            let hb_next = self.t0 + self.last_server_hb + Duration::from_secs(10);
            let step = match next {
                Some(t) if t <= target => Some(t.max(self.now)),
                _ => None,
            };
            let step = match (
                step,
                self.server_heartbeats && self.connected && hb_next <= target,
            ) {
                (Some(t), true) => Some(t.min(hb_next)),
                (Some(t), false) => Some(t),
                (None, true) => Some(hb_next),
                (None, false) => None,
            };
            let Some(t) = step else { break };
            self.now = t.max(self.now);
            self.server_heartbeat_tick(target);
            self.s.handle_timeout(self.now);
            self.drive();
        }
        self.now = target;
        self.s.handle_timeout(self.now);
        self.drive();
    }

    fn advance(&mut self, d: Duration) {
        let el = self.el() + d;
        self.advance_to(el);
    }

    fn server_heartbeat_tick(&mut self, _target: Instant) {
        if self.server_heartbeats
            && self.connected
            && self.el() >= self.last_server_hb + Duration::from_secs(10)
        {
            self.last_server_hb = self.el();
            self.deliver(ProtoHeartbeatEvent { payload_type: None }, None);
        }
    }

    fn start_ready(&mut self) {
        self.s.start(self.now);
        self.drive();
        assert_eq!(self.s.state(), State::Ready, "events: {:?}", self.events);
    }

    /// Sends a live spot with the forming bar of `b`, and stores `b` in the server's history.
    fn live(&mut self, b: Bar) {
        let hist = self
            .history
            .entry((SYM, ProtoOaTrendbarPeriod::M1 as i32))
            .or_default();
        if let Some(last) = hist.last_mut().filter(|l| l.open_time == b.open_time) {
            *last = b;
        } else {
            hist.push(b);
        }
        let tb = encode_trendbar(&b, ProtoOaTrendbarPeriod::M1).unwrap();
        self.deliver(
            ProtoOaSpotEvent {
                payload_type: None,
                ctid_trader_account_id: ACC,
                symbol_id: SYM,
                bid: Some(b.close as u64),
                ask: Some(b.close as u64 + 2),
                trendbar: vec![tb],
                session_close: None,
                timestamp: Some(self.server_utc_s() * 1000),
            },
            None,
        );
    }

    fn sent_of(&self, pt: u32) -> Vec<(Duration, Envelope)> {
        self.sent
            .iter()
            .filter(|(_, e)| e.payload.payload_type() == pt)
            .cloned()
            .collect()
    }

    fn closed_bars(&self) -> Vec<(i64, BarSource)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::BarClosed { bar, source, .. } => Some((bar.open_time, *source)),
                _ => None,
            })
            .collect()
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

fn oa_error(code: &str) -> ProtoOaErrorRes {
    ProtoOaErrorRes {
        error_code: code.into(),
        description: Some(format!("{code} (test)")),
        ..Default::default()
    }
}

// ----------------------------------------------------------------------------------------------

#[test]
fn full_auth_flow() {
    let mut p = Pair::new(|_| {});
    p.s.start(p.now);
    p.drive();
    assert_eq!(p.s.state(), State::Ready);
    let order: Vec<u32> = p
        .sent
        .iter()
        .map(|(_, e)| e.payload.payload_type())
        .collect();
    assert_eq!(order, vec![2100, 2102]);
    match &p.sent[0].1.payload {
        Payload::ApplicationAuthReq(r) => {
            assert_eq!(r.client_id, "CLIENT-ID-xyz");
            assert_eq!(r.client_secret, "CLIENT-SECRET-abc");
        }
        other => panic!("{other:?}"),
    }
    match &p.sent[1].1.payload {
        Payload::AccountAuthReq(r) => {
            assert_eq!(r.ctid_trader_account_id, ACC);
            assert_eq!(r.access_token, "ACCESS-TOKEN-1");
        }
        other => panic!("{other:?}"),
    }
    let evs = p.take_events();
    assert_eq!(evs, vec![Event::Connecting { attempt: 1 }, Event::Ready]);
    // Every request carried a distinct clientMsgId.
    let ids: HashSet<_> = p
        .sent
        .iter()
        .map(|(_, e)| e.client_msg_id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
}

#[test]
fn heartbeat_every_10s_of_send_inactivity() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.advance(Duration::from_secs(35));
    let hb: Vec<u64> = p.sent_of(51).iter().map(|(t, _)| t.as_secs()).collect();
    assert_eq!(hb, vec![10, 20, 30]);
    // A request resets the inactivity timer.
    p.s.send_request(
        p.now,
        ProtoOaTraderReq {
            payload_type: None,
            ctid_trader_account_id: ACC,
        },
    )
    .unwrap();
    p.drive();
    p.advance(Duration::from_secs(9));
    assert_eq!(p.sent_of(51).len(), 3);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.sent_of(51).len(), 4);
    assert_eq!(p.s.state(), State::Ready);
}

#[test]
fn dead_peer_reconnects_with_exponential_backoff() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.server_heartbeats = false;
    p.accept_connect = false;
    p.advance(Duration::from_secs(30));
    assert_eq!(p.s.state(), State::Disconnected);
    assert!(p.events.iter().any(|(t, e)| *t == Duration::from_secs(30)
        && matches!(e, Event::Disconnected { reason: DisconnectReason::DeadPeer, reconnect_in: Some(d) } if *d == Duration::from_secs(1))));
    assert!(
        !p.connected,
        "the session asked the driver to close the dead connection"
    );
    p.advance(Duration::from_secs(30)); // attempts at 31, 33, 37, 45, 61 → only 31..45 in range
    assert_eq!(
        p.connects,
        vec![
            Duration::ZERO,
            Duration::from_secs(31),
            Duration::from_secs(33),
            Duration::from_secs(37),
            Duration::from_secs(45)
        ]
    );
    p.accept_connect = true;
    p.server_heartbeats = true;
    p.advance(Duration::from_secs(20)); // next attempt at 61 succeeds
    assert_eq!(p.connects.last(), Some(&Duration::from_secs(61)));
    assert_eq!(p.s.state(), State::Ready);
    // Backoff is reset after Ready: a new loss waits 1 s again.
    p.s.handle_disconnected(p.now, "reset by peer".into());
    p.connected = false;
    p.drive();
    let el = p.el();
    p.advance(Duration::from_secs(1));
    assert_eq!(p.connects.last(), Some(&(el + Duration::from_secs(1))));
}

#[test]
fn backoff_caps_at_max() {
    let mut p = Pair::new(|c| c.backoff_max = Duration::from_secs(8));
    p.accept_connect = false;
    p.s.start(p.now);
    p.drive();
    p.advance(Duration::from_secs(60));
    let gaps: Vec<u64> = p
        .connects
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    assert_eq!(&gaps[..5], &[1, 2, 4, 8, 8]);
}

#[test]
fn closed_bars_once_each_across_reconnect_with_gap_fill() {
    let mut p = Pair::new(|c| c.backoff_max = Duration::from_secs(8));
    p.start_ready();
    let t = p.utc_s(); // whole minute
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    assert_eq!(p.sent_of(2127).len(), 1, "spots subscribed");
    assert_eq!(
        p.sent_of(2135).len(),
        1,
        "live trendbar subscribed after spots"
    );
    // Live stream: bars at t, t+60, t+120 (each updated mid-minute).
    for k in 0..3 {
        p.advance_to(Duration::from_secs(60 * k as u64 + 5));
        p.live(bar(t + 60 * k, 100_000 + k));
        p.advance_to(Duration::from_secs(60 * k as u64 + 30));
        p.live(bar(t + 60 * k, 100_000 + k));
    }
    assert_eq!(
        p.closed_bars().iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![t, t + 60]
    );
    // Connection dies at 150 s; the market goes on (history grows) while we are away.
    p.s.handle_disconnected(p.now + Duration::from_secs(20), "reset".into());
    p.connected = false;
    p.accept_connect = false;
    p.now += Duration::from_secs(20);
    for k in 3..9 {
        p.history
            .get_mut(&(SYM, 1))
            .unwrap()
            .push(bar(t + 60 * k, 100_000 + k));
    }
    p.advance_to(Duration::from_secs(9 * 60 + 10)); // several failed attempts (1, 2, 4, 8, 8 … s)
    assert!(p.connects.len() > 5);
    p.accept_connect = true;
    p.advance_to(Duration::from_secs(9 * 60 + 50)); // reconnects at 553 s, re-auths, resubscribes, fills
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(p.sent_of(2102).len(), 2, "account re-authorized");
    assert_eq!(p.sent_of(2127).len(), 2, "spots resubscribed");
    assert_eq!(p.sent_of(2135).len(), 2, "live trendbars resubscribed");
    // Live resumes in bar t+540 (forming): the bars closed during the outage are all emitted.
    p.live(bar(t + 540, 100_009));
    p.advance_to(Duration::from_secs(10 * 60 + 5));
    p.live(bar(t + 600, 100_010));
    p.advance_to(Duration::from_secs(10 * 60 + 10));
    let got: Vec<i64> = p.closed_bars().iter().map(|b| b.0).collect();
    let want: Vec<i64> = (0..10).map(|k| t + 60 * k).collect();
    assert_eq!(got, want, "every closed bar exactly once, in order");
    assert!(p.closed_bars().iter().all(|b| b.1 == BarSource::History));
    // Prices survive the delta encoding exactly.
    let b3 = p.events.iter().find_map(|(_, e)| match e {
        Event::BarClosed { bar, .. } if bar.open_time == t + 180 => Some(*bar),
        _ => None,
    });
    assert_eq!(b3, Some(bar(t + 180, 100_003)));
}

#[test]
fn quiet_market_bar_closes_by_clock_and_history_lag_is_retried() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    let t = p.utc_s();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    p.advance_to(Duration::from_secs(10));
    p.live(bar(t, 100_000));
    p.history_hidden.insert(t); // history lags behind live
    p.advance_to(Duration::from_secs(63)); // end + 2 s grace: fetch, bar missing → retry
    assert!(p.closed_bars().is_empty());
    p.history_hidden.clear();
    p.advance_to(Duration::from_secs(65));
    assert_eq!(p.closed_bars(), vec![(t, BarSource::History)]);
    // Another bar that history never returns: emitted from the live snapshot after the retries.
    p.advance_to(Duration::from_secs(70));
    p.live(bar(t + 60, 100_001));
    p.history_hidden.insert(t + 60);
    p.advance_to(Duration::from_secs(140));
    assert_eq!(
        p.closed_bars(),
        vec![
            (t, BarSource::History),
            (t + 60, BarSource::LiveUnconfirmed)
        ]
    );
    // No duplicate when history catches up later.
    p.history_hidden.clear();
    p.live(bar(t + 120, 100_002));
    p.advance_to(Duration::from_secs(200));
    let times: Vec<i64> = p.closed_bars().iter().map(|b| b.0).collect();
    assert_eq!(times, vec![t, t + 60, t + 120]);
}

/// A spot of another symbol stamped `utc_s` (server time), no trendbar.
fn server_tick(p: &mut Pair, utc_s: i64) {
    p.server_clock = p.server_clock.max(utc_s);
    p.deliver(
        ProtoOaSpotEvent {
            payload_type: None,
            ctid_trader_account_id: ACC,
            symbol_id: SYM + 1,
            bid: Some(100_000),
            ask: Some(100_002),
            trendbar: vec![],
            session_close: None,
            timestamp: Some(utc_s * 1000),
        },
        None,
    );
}

#[test]
fn a_server_clock_ahead_of_ours_closes_bars_of_a_symbol_that_stopped_ticking() {
    // A replay running ahead of the wall clock: the server's time (spot timestamps of any
    // symbol) closes bars the wall clock would not close for hours; also after a reconnect,
    // when the stream's own symbol has no more ticks (its data ended) and only the gap fill
    // can bring its last bar.
    let mut p = Pair::new(|_| {});
    p.ahead_s = 3600; // the server is an hour ahead
    p.start_ready();
    let t = p.server_utc_s();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    p.advance_to(Duration::from_secs(1));
    p.live(bar(t, 100_000));
    p.advance_to(Duration::from_secs(61));
    p.live(bar(t + 60, 100_001)); // the stream moved on: bar t closed
    p.advance_to(Duration::from_secs(62));
    assert_eq!(p.closed_bars(), vec![(t, BarSource::History)]);
    // Bar t+60 is forming; its symbol goes quiet. Another symbol ticks past its end + grace.
    server_tick(&mut p, t + 120 + 3);
    p.advance_to(Duration::from_secs(63));
    assert_eq!(
        p.closed_bars().iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![t, t + 60],
        "closed by the server's time, not by the wall clock (an hour away)"
    );
    // The same across a reconnect: bar t+120 forms, the connection drops, the symbol's data
    // ends (no more ticks of it); after the reconnect the server's clock alone closes it.
    p.live(bar(t + 120, 100_002));
    p.s.handle_disconnected(p.now, "reset".into());
    p.connected = false;
    p.advance_to(Duration::from_secs(65));
    assert_eq!(p.s.state(), State::Ready);
    server_tick(&mut p, t + 180 + 3);
    p.advance_to(Duration::from_secs(66));
    assert_eq!(
        p.closed_bars().iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![t, t + 60, t + 120]
    );
    // A stamp behind our clock changes nothing (the wall clock still rules a quiet market).
    server_tick(&mut p, 0);
    p.advance_to(Duration::from_secs(67));
    assert_eq!(p.closed_bars().len(), 3);
}

#[test]
fn a_bar_never_seen_forming_after_a_reconnect_is_closed_by_the_clock() {
    // The DST's seed 579: the connection drops mid-bar; after the reconnect the server's
    // clock (a spot with no trendbar) closes that bar, and the next one forms and ends with no
    // live snapshot ever reaching us (the market's last bar). The clock must close it too.
    let mut p = Pair::new(|_| {});
    p.start_ready();
    let t = p.utc_s(); // whole minute
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, Some(t - 60))
        .unwrap();
    p.drive();
    p.advance_to(Duration::from_secs(5));
    p.live(bar(t, 100_000));
    p.s.handle_disconnected(p.now, "dead peer".into());
    p.connected = false;
    p.advance_to(Duration::from_secs(20));
    assert_eq!(p.s.state(), State::Ready);
    // The market went on: bar t+60 is in history, never seen live.
    p.history
        .get_mut(&(SYM, ProtoOaTrendbarPeriod::M1 as i32))
        .unwrap()
        .push(bar(t + 60, 100_001));
    server_tick(&mut p, t + 60 + 3);
    p.advance_to(Duration::from_secs(21));
    assert_eq!(p.closed_bars(), vec![(t, BarSource::History)]);
    // The wall clock passes the end of bar t+60 plus the grace.
    p.advance_to(Duration::from_secs(125));
    assert_eq!(
        p.closed_bars(),
        vec![(t, BarSource::History), (t + 60, BarSource::History)],
        "the bar after the last emitted one is closed by the clock without a live snapshot"
    );
    // Once, not at every minute of a quiet market: no history request after it.
    let asked = p.sent_of(2137).len();
    p.advance_to(Duration::from_secs(600));
    assert!(
        p.sent_of(2137).len() <= asked + 1,
        "a quiet market asks history at most once more"
    );
    assert_eq!(p.closed_bars().len(), 2);
}

#[test]
fn live_close_emits_the_final_snapshot_at_once_and_history_confirms_it() {
    let mut p = Pair::new(|c| c.live_close = true);
    p.start_ready();
    let t = p.utc_s();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    // The first snapshot: bars between the subscription's start and it are not accounted for
    // → history is asked for them at once (not when this bar closes), so that when this bar
    // closes it can go out live.
    p.advance_to(Duration::from_secs(5));
    let before = p.sent_of(2137).len();
    p.live(bar(t, 100_000));
    p.advance_to(Duration::from_secs(6));
    let reqs = p.sent_of(2137);
    assert_eq!(
        reqs.len(),
        before + 1,
        "the gap before the first bar, asked at once"
    );
    match &reqs.last().unwrap().1.payload {
        Payload::GetTrendbarsReq(r) => assert_eq!(r.to_timestamp, Some(t * 1000)),
        other => panic!("{other:?}"),
    }
    p.advance_to(Duration::from_secs(61));
    p.live(bar(t + 60, 100_001));
    assert_eq!(p.closed_bars(), vec![(t, BarSource::Live)]);
    p.advance_to(Duration::from_secs(62));
    // Then each bar goes out the moment the stream moves on, before any history request.
    p.advance_to(Duration::from_secs(100));
    let asked = p.sent_of(2137).len();
    p.live(bar(t + 60, 100_011));
    p.advance_to(Duration::from_secs(121));
    p.live(bar(t + 120, 100_002));
    assert_eq!(
        p.closed_bars(),
        vec![(t, BarSource::Live), (t + 60, BarSource::Live)]
    );
    // No history request on the bar's path; the confirmation follows `confirm_delay` (2 s)
    // later, out of the burst of orders the bar causes, for exactly that bar.
    assert_eq!(p.sent_of(2137).len(), asked, "nothing asked at the close");
    p.advance_to(Duration::from_secs(122));
    assert_eq!(p.sent_of(2137).len(), asked, "not before confirm_delay");
    p.advance_to(Duration::from_secs(124));
    let reqs = p.sent_of(2137);
    assert_eq!(reqs.len(), asked + 1);
    match &reqs.last().unwrap().1.payload {
        Payload::GetTrendbarsReq(r) => {
            assert_eq!(r.from_timestamp, Some((t + 60) * 1000));
            assert_eq!(r.to_timestamp, Some((t + 120) * 1000));
        }
        other => panic!("{other:?}"),
    }
    let emitted = p.events.iter().find_map(|(_, e)| match e {
        Event::BarClosed {
            bar,
            source: BarSource::Live,
            ..
        } if bar.open_time == t + 60 => Some(*bar),
        _ => None,
    });
    assert_eq!(emitted, Some(bar(t + 60, 100_011)), "the last snapshot");
    // History confirms it afterwards: one request, equal, no revision.
    p.advance_to(Duration::from_secs(125));
    assert_eq!(
        p.sent_of(2137).len(),
        asked + 1,
        "confirmed at the first answer"
    );
    assert!(
        !p.events
            .iter()
            .any(|(_, e)| matches!(e, Event::BarRevised { .. })),
        "{:?}",
        p.events
    );
    // History disagrees with the snapshot (a tick the live stream never showed): revised.
    p.live(bar(t + 120, 100_012));
    p.history
        .get_mut(&(SYM, 1))
        .unwrap()
        .last_mut()
        .unwrap()
        .close = 100_020;
    p.advance_to(Duration::from_secs(181));
    p.live(bar(t + 180, 100_003));
    p.advance_to(Duration::from_secs(185));
    let revised: Vec<(i64, i64)> = p
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::BarRevised { live, history, .. } => Some((live.close, history.close)),
            _ => None,
        })
        .collect();
    assert_eq!(revised, vec![(100_017, 100_020)]);
    // After a reconnect the forming bar's snapshot may miss ticks of the outage: history again.
    p.s.handle_disconnected(p.now, "reset".into());
    p.connected = false;
    p.advance_to(Duration::from_secs(200));
    assert_eq!(p.s.state(), State::Ready);
    // The outage hid the bar's last ticks from the live stream: history has the final bar.
    *p.history.get_mut(&(SYM, 1)).unwrap().last_mut().unwrap() = bar(t + 180, 100_013);
    p.advance_to(Duration::from_secs(241));
    p.live(bar(t + 240, 100_004));
    p.advance_to(Duration::from_secs(245));
    let tail: Vec<(i64, BarSource)> = p.closed_bars().into_iter().skip(3).collect();
    assert_eq!(tail, vec![(t + 180, BarSource::History)]);
    let b = p.events.iter().rev().find_map(|(_, e)| match e {
        Event::BarClosed { bar, .. } => Some(*bar),
        _ => None,
    });
    assert_eq!(
        b,
        Some(bar(t + 180, 100_013)),
        "history's bar, not the stale snapshot"
    );
}

#[test]
fn a_bar_closed_while_its_history_request_is_in_flight_is_fetched_next_not_skipped() {
    // The stream moves on while a history request is out: the answer covers only the range it
    // asked for; the bar closed meanwhile is fetched next (it used to be marked checked by the
    // answer and never emitted).
    let mut p = Pair::new(|c| c.request_timeout = Duration::from_secs(300));
    p.start_ready();
    let t = p.utc_s();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    p.advance_to(Duration::from_secs(5));
    p.live(bar(t, 100_000));
    p.silent.insert(2137); // history answers held back
    p.advance_to(Duration::from_secs(61));
    p.live(bar(t + 60, 100_001)); // bar t closed: history asked for [.., t + 60)
    let first = p.sent_of(2137).last().cloned().expect("history request");
    p.advance_to(Duration::from_secs(62));
    p.live(bar(t + 60, 100_011));
    p.advance_to(Duration::from_secs(121));
    p.live(bar(t + 120, 100_002)); // bar t + 60 closed while the request is out
    // The answer to the first request: bar t only (what it asked for).
    p.silent.remove(&2137);
    let Payload::GetTrendbarsReq(r) = &first.1.payload else {
        panic!("{first:?}")
    };
    assert_eq!(r.to_timestamp, Some((t + 60) * 1000));
    p.deliver(
        ProtoOaGetTrendbarsRes {
            payload_type: None,
            ctid_trader_account_id: ACC,
            period: r.period,
            timestamp: Some((t + 121) * 1000),
            trendbar: vec![encode_trendbar(&bar(t, 100_000), ProtoOaTrendbarPeriod::M1).unwrap()],
            symbol_id: Some(SYM),
            has_more: Some(false),
        },
        first.1.client_msg_id.clone(),
    );
    p.advance_to(Duration::from_secs(130));
    let times: Vec<i64> = p.closed_bars().iter().map(|b| b.0).collect();
    assert_eq!(times, vec![t, t + 60], "every closed bar once, in order");
}

#[test]
fn streams_are_shared_per_symbol_and_period() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::H1, None)
        .unwrap();
    p.drive();
    assert_eq!(p.sent_of(2127).len(), 1);
    assert_eq!(p.sent_of(2135).len(), 2, "one per period");
    p.s.unsubscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1)
        .unwrap();
    p.drive();
    assert_eq!(p.sent_of(2136).len(), 0, "another model still uses M1");
    p.s.unsubscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1)
        .unwrap();
    p.s.unsubscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::H1)
        .unwrap();
    p.drive();
    assert_eq!(p.sent_of(2136).len(), 2);
    assert_eq!(
        p.sent_of(2129).len(),
        1,
        "spots dropped with the last period"
    );
    assert_eq!(
        p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::Mn1, None),
        Err(SessionError::UnsupportedPeriod(ProtoOaTrendbarPeriod::Mn1))
    );
}

#[test]
fn rate_limits_50_per_s_and_5_per_s_history() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.silent.insert(2122); // TraderRes never needed here
    p.silent.insert(2121);
    let start = p.sent.len();
    for _ in 0..120 {
        p.s.send_request(
            p.now,
            ProtoOaTraderReq {
                payload_type: None,
                ctid_trader_account_id: ACC,
            },
        )
        .unwrap();
    }
    for _ in 0..12 {
        let req = ProtoOaDealListReq {
            ctid_trader_account_id: ACC,
            from_timestamp: Some(0),
            to_timestamp: Some(1),
            ..Default::default()
        };
        p.s.send_request(p.now, req).unwrap();
    }
    p.drive();
    p.advance(Duration::from_millis(3500));
    let sends: Vec<(Duration, u32)> = p.sent[start..]
        .iter()
        .filter(|(_, e)| e.payload.payload_type() != 51)
        .map(|(t, e)| (*t, e.payload.payload_type()))
        .collect();
    assert_eq!(sends.len(), 132);
    // Sliding window check: any window of the server's 1 s plus the session's margin holds
    // ≤ 50 sends (auth sends at t=0 count too) and ≤ 5 history: a delay up to the margin on the
    // way still leaves the server counting at most that in its own second.
    let window = Duration::from_secs(1) + RATE_MARGIN;
    assert!(RATE_MARGIN >= Duration::from_millis(100));
    let all: Vec<(Duration, u32)> = p
        .sent
        .iter()
        .filter(|(_, e)| e.payload.payload_type() != 51)
        .map(|(t, e)| (*t, e.payload.payload_type()))
        .collect();
    for (i, (ti, _)) in all.iter().enumerate() {
        let win: Vec<_> = all[i..]
            .iter()
            .take_while(|(t, _)| *t < *ti + window)
            .collect();
        assert!(
            win.len() <= 50,
            "{} sends in the window from {:?}",
            win.len(),
            ti
        );
        assert!(win.iter().filter(|(_, pt)| *pt == 2133).count() <= 5);
    }
    // It is not slower than the limit either: 132 requests in three windows after the first
    // (the history requests queued behind the general ones), and each sixth history request
    // goes out as soon as the first of the five before leaves the window.
    assert!(sends.last().unwrap().0 <= window * 3);
    let history: Vec<Duration> = sends
        .iter()
        .filter(|(_, pt)| *pt == 2133)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(history.len(), 12);
    for k in 5..history.len() {
        let gap = history[k] - history[k - 5];
        assert!(
            gap >= window && gap <= window + Duration::from_millis(10),
            "history request {k} went {gap:?} after the fifth before it"
        );
    }
}

#[test]
fn request_frequency_exceeded_is_requeued_after_retry_after() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.freq_errors = 1;
    let req = ProtoOaGetTrendbarsReq {
        ctid_trader_account_id: ACC,
        from_timestamp: Some(0),
        to_timestamp: Some(60_000),
        period: ProtoOaTrendbarPeriod::M1 as i32,
        symbol_id: SYM,
        ..Default::default()
    };
    let id = p.s.send_request(p.now, req).unwrap();
    p.drive();
    p.advance(Duration::from_secs(3));
    let sends: Vec<Duration> = p.sent_of(2137).iter().map(|(t, _)| *t).collect();
    assert_eq!(
        sends,
        vec![Duration::ZERO, Duration::from_secs(2)],
        "resent after retryAfter = 2 s"
    );
    let responses: Vec<_> = p
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { id: i, .. } if *i == id))
        .collect();
    assert_eq!(responses.len(), 1);
    assert!(
        !p.events
            .iter()
            .any(|(_, e)| matches!(e, Event::RequestError { .. }))
    );
}

#[test]
fn request_timeout_gives_outcome_unknown_and_never_resends() {
    let mut p = Pair::new(|c| c.request_timeout = Duration::from_secs(5));
    p.start_ready();
    p.silent.insert(2106);
    let order = ProtoOaNewOrderReq {
        ctid_trader_account_id: ACC,
        symbol_id: SYM,
        order_type: ProtoOaOrderType::Market as i32,
        trade_side: ProtoOaTradeSide::Buy as i32,
        volume: 100_000,
        client_order_id: Some("EURUSD-1700000000".into()),
        ..Default::default()
    };
    let id = p.s.send_request(p.now, order.clone()).unwrap();
    p.drive();
    p.advance(Duration::from_secs(6));
    assert!(p.events.iter().any(|(t, e)| *t == Duration::from_secs(5)
        && *e
            == Event::RequestOutcomeUnknown {
                id,
                payload_type: 2106,
                reason: UnknownReason::Timeout
            }));
    assert_eq!(p.sent_of(2106).len(), 1, "never resent");
    // A late execution event is still delivered and linked to the request.
    let late = ProtoOaExecutionEvent {
        ctid_trader_account_id: ACC,
        execution_type: ProtoOaExecutionType::OrderAccepted as i32,
        ..Default::default()
    };
    p.deliver(late, Some(id.client_msg_id()));
    assert!(
        p.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Execution { request: Some(i), .. } if *i == id))
    );

    // In flight when the connection drops → outcome unknown (Disconnected), not resent.
    let id2 = p.s.send_request(p.now, order.clone()).unwrap();
    p.drive();
    p.s.handle_disconnected(p.now, "reset".into());
    p.connected = false;
    p.drive();
    assert!(p.events.iter().any(|(_, e)| *e
        == Event::RequestOutcomeUnknown {
            id: id2,
            payload_type: 2106,
            reason: UnknownReason::Disconnected
        }));
    // Queued while disconnected and not sent in time → not sent (safe to retry).
    p.accept_connect = false;
    let id3 = p.s.send_request(p.now, order).unwrap();
    p.advance(Duration::from_secs(6));
    assert!(p.events.iter().any(|(_, e)| *e
        == Event::RequestNotSent {
            id: id3,
            reason: NotSentReason::QueueTimeout
        }));
    assert_eq!(p.sent_of(2106).len(), 2);
}

#[test]
fn responses_are_matched_by_client_msg_id() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    let a =
        p.s.send_request(
            p.now,
            ProtoOaTraderReq {
                payload_type: None,
                ctid_trader_account_id: ACC,
            },
        )
        .unwrap();
    p.drive();
    let resp = p.events.iter().find_map(|(_, e)| match e {
        Event::Response {
            id,
            payload: Payload::TraderRes(r),
        } => Some((*id, r.trader.balance)),
        _ => None,
    });
    assert_eq!(resp, Some((a, 1_000_000)));
    // An error answer is a RequestError for that id.
    let b =
        p.s.send_request(
            p.now,
            ProtoOaSymbolByIdReq {
                payload_type: None,
                ctid_trader_account_id: ACC,
                symbol_id: vec![99],
            },
        )
        .unwrap();
    p.drive();
    p.deliver(oa_error("SYMBOL_NOT_FOUND"), Some(b.client_msg_id()));
    assert!(p.events.iter().any(|(_, e)| matches!(e, Event::RequestError { id, code: ErrorCode::OpenApi(ProtoOaErrorCode::SymbolNotFound), .. } if *id == b)));
    // Session-managed payloads are refused.
    assert_eq!(
        p.s.send_request(
            p.now,
            ProtoOaSubscribeSpotsReq {
                ctid_trader_account_id: ACC,
                ..Default::default()
            }
        ),
        Err(SessionError::Reserved(2127))
    );
}

#[test]
fn wrong_secret_is_a_clear_fatal_error() {
    let mut p = Pair::new(|c| c.credentials.client_secret = Secret::new("WRONG-SECRET"));
    p.s.start(p.now);
    p.drive();
    assert_eq!(p.s.state(), State::Failed);
    let fatal: Vec<_> = p
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::AuthFailed { .. }))
        .collect();
    assert_eq!(fatal.len(), 1);
    assert!(matches!(
        &fatal[0].1,
        Event::AuthFailed {
            code: ErrorCode::OpenApi(ProtoOaErrorCode::ChClientAuthFailure),
            ..
        }
    ));
    p.advance(Duration::from_secs(300));
    assert_eq!(p.connects.len(), 1, "no reconnect loop with a wrong secret");
    assert_eq!(
        p.s.send_request(p.now, ProtoOaVersionReq::default()),
        Err(SessionError::Ended)
    );
    let dump = format!("{:?} {:?}", p.events, p.s);
    assert!(!dump.contains("WRONG-SECRET") && !dump.contains("CLIENT-ID-xyz"));
}

#[test]
fn token_invalidated_event_refreshes_and_reauthorizes() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    p.deliver(
        ProtoOaAccountsTokenInvalidatedEvent {
            payload_type: None,
            ctid_trader_account_ids: vec![ACC],
            reason: Some("revoked".into()),
        },
        None,
    );
    assert_eq!(p.s.state(), State::Ready);
    let refresh = p.sent_of(2173);
    assert_eq!(refresh.len(), 1);
    match &refresh[0].1.payload {
        Payload::RefreshTokenReq(r) => assert_eq!(r.refresh_token, "REFRESH-TOKEN-1"),
        other => panic!("{other:?}"),
    }
    assert!(p.events.iter().any(|(_, e)| matches!(e, Event::TokensRefreshed { access_token, refresh_token, expires_in: 2_628_000 }
        if access_token.expose() == "ACCESS-TOKEN-2" && refresh_token.expose() == "REFRESH-TOKEN-2")));
    let auths = p.sent_of(2102);
    assert_eq!(auths.len(), 2);
    match &auths[1].1.payload {
        Payload::AccountAuthReq(r) => assert_eq!(r.access_token, "ACCESS-TOKEN-2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.sent_of(2127).len(), 2, "resubscribed after re-auth");
    assert_eq!(
        p.s.credentials().refresh_token.as_ref().map(|s| s.expose()),
        Some("REFRESH-TOKEN-2")
    );
    let dump = format!("{:?}", p.events);
    assert!(
        !dump.contains("ACCESS-TOKEN-2") && !dump.contains("REFRESH-TOKEN-2"),
        "tokens redacted in Debug"
    );
}

/// Every secret of a full auth + token refresh + re-auth flow stays out of the logs, at TRACE.
#[test]
fn no_secret_in_trace_logs_through_auth_and_refresh() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    // A global default, not `with_default`: tracing caches each callsite's interest globally,
    // and a callsite first hit by another test thread while only a thread-local subscriber
    // existed could stay disabled for this one (seen under `cargo test --workspace`). Setting the
    // global default rebuilds every callsite's interest; it is the only test in this binary
    // that installs a subscriber, and the other tests' logs landing in the buffer only make the
    // secret check stricter.
    tracing::subscriber::set_global_default(sub).expect("the only global subscriber here");
    {
        let mut p = Pair::new(|_| {});
        p.start_ready();
        p.deliver(
            ProtoOaAccountsTokenInvalidatedEvent {
                payload_type: None,
                ctid_trader_account_ids: vec![ACC],
                reason: Some("revoked".into()),
            },
            None,
        );
        assert_eq!(p.s.state(), State::Ready);
        assert_eq!(p.sent_of(2173).len(), 1, "refreshed");
        assert_eq!(p.sent_of(2102).len(), 2, "re-authorized");
        tracing::debug!(events = ?p.events, session = ?p.s, "dump");
    }
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("frame out") && logs.contains("frame in"),
        "{logs}"
    );
    assert!(logs.contains("refreshing"), "{logs}");
    for secret in [
        "CLIENT-ID-xyz",
        "CLIENT-SECRET-abc",
        "ACCESS-TOKEN-1",
        "REFRESH-TOKEN-1",
        "ACCESS-TOKEN-2",
        "REFRESH-TOKEN-2",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

#[test]
fn expired_token_without_refresh_token_fails_clearly() {
    let mut p = Pair::new(|c| c.credentials.refresh_token = None);
    p.account_auth_error = Some("OA_AUTH_TOKEN_EXPIRED");
    p.s.start(p.now);
    p.drive();
    assert_eq!(p.s.state(), State::Failed);
    assert!(p.events.iter().any(|(_, e)| matches!(
        e,
        Event::AuthFailed {
            code: ErrorCode::OpenApi(ProtoOaErrorCode::OaAuthTokenExpired),
            ..
        }
    )));
}

#[test]
fn expired_token_at_connect_is_refreshed() {
    let mut p = Pair::new(|_| {});
    p.account_auth_error = Some("CH_ACCESS_TOKEN_INVALID");
    p.s.start(p.now);
    p.drive();
    assert_eq!(p.s.state(), State::Ready);
    let order: Vec<u32> = p
        .sent
        .iter()
        .map(|(_, e)| e.payload.payload_type())
        .collect();
    assert_eq!(order, vec![2100, 2102, 2173, 2102]);
}

#[test]
fn garbage_and_oversized_frames_reset_the_connection() {
    let mut p = Pair::new(|c| c.max_frame_len = 1024);
    p.start_ready();
    p.s.handle_bytes(p.now, &[0, 0, 0x10, 0, 1, 2, 3]); // 4096 > 1024
    p.drive();
    assert!(p.events.iter().any(|(_, e)| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::Frame(_),
            ..
        }
    )));
    assert!(!p.connected);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.s.state(), State::Ready, "reconnected");
    p.s.handle_bytes(p.now, &[0, 0, 0, 3, 0xff, 0xff, 0xff]); // not a ProtoMessage
    p.drive();
    assert!(p.events.iter().any(|(_, e)| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::Decode(_),
            ..
        }
    )));
}

#[test]
fn client_disconnect_event_reconnects() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.deliver(
        ProtoOaClientDisconnectEvent {
            payload_type: None,
            reason: Some("maintenance".into()),
        },
        None,
    );
    assert_eq!(p.s.state(), State::Disconnected);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(p.connects.len(), 2);
}

fn market_order(coid: &str) -> ProtoOaNewOrderReq {
    ProtoOaNewOrderReq {
        ctid_trader_account_id: ACC,
        symbol_id: SYM,
        order_type: ProtoOaOrderType::Market as i32,
        trade_side: ProtoOaTradeSide::Buy as i32,
        volume: 100_000,
        client_order_id: Some(coid.into()),
        ..Default::default()
    }
}

#[test]
fn maintenance_at_app_auth_waits_for_its_announced_end_then_reconnects() {
    let mut p = Pair::new(|_| {});
    let mut e = oa_error("SERVER_IS_UNDER_MAINTENANCE");
    let end_ms = T0_UTC_MS + 7_200_000; // two hours from now
    e.maintenance_end_timestamp = Some(end_ms);
    p.app_auth_errors.push_back(e);
    p.s.start(p.now);
    p.drive();
    assert_eq!(p.s.state(), State::Disconnected);
    assert!(
        p.events.iter().any(|(_, e)| *e
            == Event::Disconnected {
                reason: DisconnectReason::Maintenance {
                    until_ms: Some(end_ms)
                },
                reconnect_in: Some(Duration::from_secs(7200)),
            }),
        "{:?}",
        p.events
    );
    p.advance(Duration::from_secs(7199));
    assert_eq!(
        p.connects,
        vec![Duration::ZERO],
        "no attempt during maintenance"
    );
    p.advance(Duration::from_secs(2));
    assert_eq!(
        p.connects,
        vec![Duration::ZERO, Duration::from_secs(7200)],
        "one attempt at its end"
    );
    assert_eq!(p.s.state(), State::Ready);
}

#[test]
fn maintenance_without_an_end_reconnects_after_the_backoff() {
    let mut p = Pair::new(|_| {});
    p.app_auth_errors
        .push_back(oa_error("SERVER_IS_UNDER_MAINTENANCE"));
    p.s.start(p.now);
    p.drive();
    p.advance(Duration::from_secs(2));
    assert_eq!(p.connects, vec![Duration::ZERO, Duration::from_secs(1)]);
    assert_eq!(p.s.state(), State::Ready);
}

#[test]
fn an_order_refused_for_maintenance_is_an_error_never_resent_and_the_session_waits_for_the_end() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.answer_orders = true;
    let mut e = oa_error("SERVER_IS_UNDER_MAINTENANCE");
    let end_ms = T0_UTC_MS + 600_000;
    e.maintenance_end_timestamp = Some(end_ms);
    p.order_errors.push_back(e);
    let id = p.s.send_request(p.now, market_order("EURUSD-1")).unwrap();
    p.drive();
    assert!(p.events.iter().any(|(_, e)| matches!(e,
        Event::RequestError { id: i, code, .. }
            if *i == id && code.as_str() == "SERVER_IS_UNDER_MAINTENANCE")));
    assert_eq!(p.s.state(), State::Disconnected);
    p.advance(Duration::from_secs(900));
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(p.connects, vec![Duration::ZERO, Duration::from_secs(600)]);
    assert_eq!(
        p.sent_of(2106).len(),
        1,
        "the refused order is never resent"
    );
}

#[test]
fn blocked_payload_type_with_retry_after_resends_the_order_once_after_it_and_fills_once() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.answer_orders = true;
    let mut e = oa_error("BLOCKED_PAYLOAD_TYPE");
    e.retry_after = Some(3);
    p.order_errors.push_back(e);
    let id = p.s.send_request(p.now, market_order("EURUSD-2")).unwrap();
    p.drive();
    p.advance(Duration::from_secs(5));
    let sends: Vec<Duration> = p.sent_of(2106).iter().map(|(t, _)| *t).collect();
    assert_eq!(
        sends,
        vec![Duration::ZERO, Duration::from_secs(3)],
        "refused, so resent once, after retryAfter"
    );
    let fills = p
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Execution { request: Some(i), .. } if *i == id))
        .count();
    assert_eq!(fills, 1);
    assert!(
        !p.events
            .iter()
            .any(|(_, e)| matches!(e, Event::RequestError { .. }))
    );
}

#[test]
fn connections_limit_exceeded_at_app_auth_backs_off_then_connects() {
    let mut p = Pair::new(|_| {});
    p.app_auth_errors
        .push_back(oa_error("CONNECTIONS_LIMIT_EXCEEDED"));
    p.app_auth_errors
        .push_back(oa_error("CONNECTIONS_LIMIT_EXCEEDED"));
    p.s.start(p.now);
    p.drive();
    p.advance(Duration::from_secs(4));
    assert_eq!(
        p.connects,
        vec![
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(3)
        ],
        "exponential backoff, no tight loop"
    );
    assert_eq!(p.s.state(), State::Ready);
    assert!(p.events.iter().any(|(_, e)| matches!(e,
        Event::Disconnected { reason: DisconnectReason::AuthError(c), .. }
            if c.as_str() == "CONNECTIONS_LIMIT_EXCEEDED")));
}

#[test]
fn a_history_answer_that_never_comes_is_asked_again_and_no_bar_is_missed() {
    let mut p = Pair::new(|c| c.request_timeout = Duration::from_secs(5));
    p.start_ready();
    let t = p.utc_s();
    let bars: Vec<Bar> = (0..3).map(|i| bar(t + 60 * i, 110_000 + i)).collect();
    p.history
        .insert((SYM, ProtoOaTrendbarPeriod::M1 as i32), bars.clone());
    p.s.subscribe_bars(p.now, SYM, ProtoOaTrendbarPeriod::M1, None)
        .unwrap();
    p.drive();
    p.silent.insert(2137);
    for (i, b) in bars.iter().enumerate() {
        p.advance_to(Duration::from_secs(60 * i as u64 + 10));
        p.live(*b);
    }
    p.advance_to(Duration::from_secs(190));
    assert!(p.closed_bars().is_empty(), "nothing answered yet");
    let asked = p.sent_of(2137).len();
    assert!(
        asked >= 2,
        "asked again after each unanswered request ({asked})"
    );
    p.silent.remove(&2137);
    p.advance(Duration::from_secs(10));
    assert_eq!(
        p.closed_bars(),
        bars.iter()
            .map(|b| (b.open_time, BarSource::History))
            .collect::<Vec<_>>(),
        "every bar, once, in order, from history"
    );
}

/// The access tokens sent in `AccountAuthReq`s so far, in order.
fn auth_tokens(p: &Pair) -> Vec<String> {
    p.sent_of(2102)
        .into_iter()
        .map(|(_, e)| match e.payload {
            Payload::AccountAuthReq(r) => r.access_token,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Store before use: with `confirm_token_store`, the refreshed access token goes out only after
/// the caller said the pair is stored (a crash in between restarts on the stored or the old pair,
/// never on a pair nobody kept).
#[test]
fn with_confirm_token_store_the_new_token_is_used_only_after_the_pair_is_stored() {
    let mut p = Pair::new(|c| c.confirm_token_store = true);
    p.account_auth_error = Some("CH_ACCESS_TOKEN_INVALID");
    p.s.start(p.now);
    p.drive();
    assert!(
        p.events
            .iter()
            .any(|(_, e)| matches!(e, Event::TokensRefreshed { .. }))
    );
    assert_eq!(
        auth_tokens(&p),
        vec!["ACCESS-TOKEN-1"],
        "no auth before the store"
    );
    assert!(p.s.tokens_unstored());
    assert_eq!(p.s.state(), State::AccountAuth);
    // Time passes (heartbeats), still nothing uses the new token.
    p.advance(Duration::from_secs(5));
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1"]);
    p.s.handle_tokens_stored(p.now);
    p.drive();
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    assert_eq!(p.s.state(), State::Ready);
    assert!(!p.s.tokens_unstored());
}

/// A reconnect while the pair is not yet stored does not use it either: account auth waits for
/// the store on the new connection.
#[test]
fn a_reconnect_before_the_store_does_not_use_the_new_token() {
    let mut p = Pair::new(|c| c.confirm_token_store = true);
    p.account_auth_error = Some("CH_ACCESS_TOKEN_INVALID");
    p.s.start(p.now);
    p.drive();
    p.s.handle_disconnected(p.now, "reset by peer".into());
    p.connected = false;
    p.drive();
    p.advance(Duration::from_secs(2));
    assert_eq!(p.connects.len(), 2, "reconnected");
    assert_eq!(p.sent_of(2100).len(), 2, "application auth again");
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1"]);
    p.s.handle_tokens_stored(p.now);
    p.drive();
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    assert_eq!(p.s.state(), State::Ready);
}

/// A store that failed is fatal and says so: the old refresh token is spent, a session that went
/// on would be lost at the next restart.
#[test]
fn a_failed_token_store_is_a_fatal_auth_failure_naming_the_store() {
    let mut p = Pair::new(|c| c.confirm_token_store = true);
    p.account_auth_error = Some("CH_ACCESS_TOKEN_INVALID");
    p.s.start(p.now);
    p.drive();
    p.s.handle_tokens_store_failed(p.now, "token folder /x: read-only file system".into());
    p.drive();
    assert_eq!(p.s.state(), State::Failed);
    assert!(p.events.iter().any(|(_, e)| matches!(e,
        Event::AuthFailed { code: ErrorCode::Other(c), description: Some(d) }
            if c == "TOKEN_STORE_FAILED" && d.contains("read-only"))));
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1"]);
}

/// Without the flag (the default, for callers that do not rotate a stored pair) the new token is
/// used at once, as before.
#[test]
fn without_confirm_token_store_the_new_token_is_used_at_once() {
    let mut p = Pair::new(|_| {});
    p.account_auth_error = Some("CH_ACCESS_TOKEN_INVALID");
    p.s.start(p.now);
    p.drive();
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    assert!(!p.s.tokens_unstored());
}

/// Refresh ahead of expiry: with the access token's expiry known, the session refreshes
/// `refresh_margin` before it (not earlier, once), re-authorizes with the new token, and then
/// waits for the new token's own margin.
#[test]
fn a_known_expiry_is_refreshed_a_margin_ahead_once_then_the_new_lifetime_counts() {
    let expires = T0_UTC_MS + 3_600_000;
    let mut p = Pair::new(|c| {
        c.access_expires_at_ms = Some(expires);
        c.refresh_margin = Duration::from_secs(600);
    });
    p.start_ready();
    p.advance_to(Duration::from_secs(3_000 - 1));
    assert!(p.sent_of(2173).is_empty(), "not before the margin");
    p.advance_to(Duration::from_secs(3_000 + 1));
    assert_eq!(
        p.sent_of(2173).len(),
        1,
        "refreshed at expiry minus the margin"
    );
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    assert_eq!(p.s.state(), State::Ready);
    // The new token lives 2,628,000 s: two hours later, still no second refresh.
    p.advance(Duration::from_secs(7_200));
    assert_eq!(p.sent_of(2173).len(), 1, "once");
}

/// With no known expiry (the default) the session never refreshes on its own.
#[test]
fn without_a_known_expiry_the_session_refreshes_only_when_told() {
    let mut p = Pair::new(|c| c.refresh_margin = Duration::from_secs(600));
    p.start_ready();
    p.advance(Duration::from_secs(7_200));
    assert!(p.sent_of(2173).is_empty());
}

/// A refresh ahead of time follows store before use too.
#[test]
fn a_refresh_ahead_waits_for_the_store_before_using_the_new_token() {
    let mut p = Pair::new(|c| {
        c.access_expires_at_ms = Some(T0_UTC_MS + 60_000);
        c.refresh_margin = Duration::from_secs(30);
        c.confirm_token_store = true;
    });
    p.start_ready();
    p.advance_to(Duration::from_secs(31));
    assert_eq!(p.sent_of(2173).len(), 1);
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1"]);
    p.s.handle_tokens_stored(p.now);
    p.drive();
    assert_eq!(auth_tokens(&p), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    assert_eq!(p.s.state(), State::Ready);
}

/// A request refused for its rate (re-queued with `retryAfter`) whose retry time passes while
/// it cannot go out (here: the connection is down) must not hold the session's timer at that
/// time: a caller sleeping until `poll_timeout` would spin there forever (the DST's livelock
/// with the real executor's traffic and a history rate limit).
#[test]
fn a_retry_time_passed_while_disconnected_does_not_hold_the_timer_there() {
    let mut p = Pair::new(|_| {});
    p.start_ready();
    p.freq_errors = 1;
    let req = ProtoOaGetTrendbarsReq {
        ctid_trader_account_id: ACC,
        from_timestamp: Some(0),
        to_timestamp: Some(60_000),
        period: ProtoOaTrendbarPeriod::M1 as i32,
        symbol_id: SYM,
        ..Default::default()
    };
    p.s.send_request(p.now, req).unwrap();
    p.drive();
    // Refused, re-queued for +2 s; then the connection drops and stays down past it.
    p.accept_connect = false;
    p.s.handle_disconnected(p.now, "test".into());
    p.drive();
    p.now = p.t0 + Duration::from_secs(2);
    p.s.handle_timeout(p.now);
    p.drive();
    let next = p.s.poll_timeout().expect("a timer (the reconnect)");
    assert!(
        next > p.now,
        "the timer stays at {:?} after handling it at {:?}",
        next - p.t0,
        p.now - p.t0
    );
}
