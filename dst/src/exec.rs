//! The executor side of the simulation, until `ExecutorCore` (issue 15 item 2) can be driven
//! here: a small sans-IO loop over `oracle_ctrader`'s `Session` events and the predictor's
//! lines, with the executor's rules that the invariants need.
//!
//! - Bars: every closed bar the session emits is kept (the `HISTORY` a predictor asks for is
//!   served from them) and, while a predictor is connected, sent to it as a live `BAR` with the
//!   stream's next `SEQ`.
//! - Orders follow the executor's policy at its coarsest: the real position follows the virtual
//!   one only at transitions; an exit is always sent (never refused here); an entry is sent only
//!   for a transition seen live (no chasing a missed one); a client order id is journaled before
//!   its order goes out and never used again; an order whose outcome is unknown is never resent
//!   (the positions are reconciled instead: `ReconcileReq`, also after every `Ready`).
//! - `ACK`s: `HOLD` with nothing to do, `WAIT_SYNC|MISSED_ENTRY` for an entry not chased, `OK`
//!   when the last order of the transition filled, `FAIL` when the broker refused one.

use std::collections::{BTreeMap, BTreeSet};

use oracle_ctrader::proto::{
    ProtoOaClosePositionReq, ProtoOaExecutionEvent, ProtoOaExecutionType, ProtoOaNewOrderReq,
    ProtoOaOrderType, ProtoOaPositionStatus, ProtoOaReconcileReq, ProtoOaTradeSide,
    ProtoOaTrendbarPeriod,
};
use oracle_ctrader::session::{Event, RequestId};
use oracle_ctrader::{Payload, Session};
use oracle_ipc::{Ack, Action, HistoryEnd, Message, Outcome, Timeframe};

/// A bar as the executor keeps it (decimal prices, as sent on the IPC line).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeptBar {
    /// Open time, Unix s.
    pub time: i64,
    /// Open, high, low, close.
    pub ohlc: [f64; 4],
    /// Tick volume.
    pub volume: u64,
    /// The stream's `SEQ` for it.
    pub seq: u64,
}

/// One bar stream (symbol, period) and the models on it.
#[derive(Debug)]
pub struct Stream {
    /// Broker symbol id.
    pub symbol_id: i64,
    /// Period.
    pub period: ProtoOaTrendbarPeriod,
    /// Symbol name.
    pub symbol: String,
    /// Timeframe.
    pub tf: Timeframe,
    /// Price digits.
    pub digits: u32,
    /// Closed bars so far, oldest first.
    pub bars: Vec<KeptBar>,
    /// The open times the broker's history holds for this stream, in order (the harness's
    /// knowledge, for the no-gap check of the session's output).
    pub expected: Vec<i64>,
    /// The last bar closed before the replay started: the predictor connects once every
    /// stream holds it.
    pub warm_until: Option<i64>,
    /// Open times of bars sent again as revisions (`REV:1`).
    pub revised: BTreeSet<i64>,
}

/// What the executor knows of one model.
#[derive(Debug)]
pub struct ModelSide {
    /// Model name.
    pub name: String,
    /// Stream key.
    pub stream: (i64, i32),
    /// Volume of one entry, broker units.
    pub volume: i64,
    /// The virtual direction of the last SIGNAL (None: no SIGNAL since this executor started).
    pub last_target: Option<i8>,
    /// SEQs of SIGNALs handled.
    pub handled: BTreeSet<u64>,
    /// Orders of the current transition in flight.
    pub in_flight: u32,
    /// An entry waiting for the exits of its transition to fill.
    pub entry_after_exit: Option<(i8, String)>,
    /// The current transition was allowed and every order of it filled so far: when the last
    /// one fills, the real direction must equal `last_target`.
    pub expect_sync: bool,
    /// The ACK to send when the transition completes.
    pub ack: Option<(Action, i64, u64)>,
}

/// An order (or a reconcile) the executor has sent.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Entry {
        model: String,
        coid: String,
    },
    Exit {
        model: String,
        position: i64,
        volume: i64,
    },
    Reconcile,
}

/// A real position as the executor sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RealPos {
    /// Model label.
    pub model: String,
    /// +1 buy, −1 sell.
    pub dir: i8,
    /// Volume.
    pub volume: i64,
}

/// The executor side.
#[derive(Debug)]
pub struct Exec {
    account_id: i64,
    /// Streams by (symbol id, period number).
    pub streams: BTreeMap<(i64, i32), Stream>,
    /// Models by name.
    pub models: BTreeMap<String, ModelSide>,
    /// Real positions by position id.
    pub positions: BTreeMap<i64, RealPos>,
    /// The order journal: client order ids, written before the order goes out.
    pub journal: BTreeSet<String>,
    requests: BTreeMap<RequestId, Req>,
    /// Orders accepted, waiting for their fill (or cancel).
    accepted: Vec<Req>,
    /// Lines for the predictor (sent while it is connected).
    pub to_predictor: Vec<String>,
    /// A predictor is connected.
    pub connected: bool,
    /// Invariant violations seen (the harness fails the seed on the first).
    pub violations: Vec<String>,
    /// Refusals of exits by the broker other than `MARKET_CLOSED` (a market shut for the
    /// night): allowed only once the replay is over.
    pub exit_refusals: Vec<String>,
    /// SIGNALs seen twice for one bar (after a predictor restart): ignored.
    pub duplicate_signals: u64,
    /// Entries not chased.
    pub missed_entries: u64,
    /// Orders sent.
    pub orders: u64,
    /// Orders the broker refused.
    pub refused: u64,
    /// Requests whose outcome was unknown (looked up by reconciling).
    pub unknown: u64,
    /// Token refreshes the session did.
    pub refreshes: u64,
    /// Live bars sent to predictors so far.
    pub live_sent: u64,
    /// Defect injection for the harness's own test: the n-th live bar is not sent to the
    /// predictor (an executor that loses a bar).
    pub drop_live_nth: Option<u64>,
    /// Defect injection: the n-th live bar goes to the predictor with another close.
    pub alter_live_nth: Option<u64>,
}

impl Exec {
    /// An executor for `account_id` with these streams and models.
    pub fn new(account_id: i64, streams: Vec<Stream>, models: Vec<ModelSide>) -> Self {
        Exec {
            account_id,
            streams: streams
                .into_iter()
                .map(|s| ((s.symbol_id, s.period as i32), s))
                .collect(),
            models: models.into_iter().map(|m| (m.name.clone(), m)).collect(),
            positions: BTreeMap::new(),
            journal: BTreeSet::new(),
            requests: BTreeMap::new(),
            accepted: Vec::new(),
            to_predictor: Vec::new(),
            connected: false,
            violations: Vec::new(),
            exit_refusals: Vec::new(),
            duplicate_signals: 0,
            missed_entries: 0,
            orders: 0,
            refused: 0,
            unknown: 0,
            refreshes: 0,
            live_sent: 0,
            drop_live_nth: None,
            alter_live_nth: None,
        }
    }

    /// Every stream holds the bars closed before the replay started.
    pub fn warm(&self) -> bool {
        self.streams.values().all(|s| {
            s.warm_until
                .is_none_or(|w| s.bars.last().is_some_and(|b| b.time >= w))
        })
    }

    /// The real direction of a model's positions (0: none).
    pub fn real_dir(&self, model: &str) -> i8 {
        let mut d = 0i64;
        for p in self.positions.values().filter(|p| p.model == model) {
            d += i64::from(p.dir);
        }
        d.signum() as i8
    }

    /// Orders in flight, over every model.
    pub fn in_flight(&self) -> usize {
        self.requests.len() + self.accepted.len()
    }

    fn line(&mut self, m: Message<'_>) {
        match m.to_line() {
            Ok(l) => self.to_predictor.push(l),
            Err(e) => self
                .violations
                .push(format!("the executor built an invalid line: {e:?}")),
        }
    }

    fn send_bar(&mut self, key: (i64, i32), i: usize, hist: bool, rev: bool) {
        let s = &self.streams[&key];
        let mut b = s.bars[i];
        let (symbol, tf) = (s.symbol.clone(), s.tf);
        if !hist && !rev {
            self.live_sent += 1;
            if self.drop_live_nth == Some(self.live_sent) {
                return;
            }
            if self.alter_live_nth == Some(self.live_sent) {
                b.ohlc[3] = if b.ohlc[3] == b.ohlc[1] {
                    b.ohlc[2]
                } else {
                    b.ohlc[1]
                };
            }
        }
        self.line(Message::Bar(oracle_ipc::Bar {
            symbol: &symbol,
            tf,
            time: b.time,
            open: b.ohlc[0],
            high: b.ohlc[1],
            low: b.ohlc[2],
            close: b.ohlc[3],
            volume: b.volume,
            seq: b.seq,
            hist,
            rev,
        }));
    }

    /// A predictor connected.
    pub fn handle_predictor_connected(&mut self) {
        self.connected = true;
        self.to_predictor.clear();
    }

    /// The predictor's connection is gone (lines not yet sent are lost with it).
    pub fn handle_predictor_gone(&mut self) {
        self.connected = false;
        self.to_predictor.clear();
    }

    /// One session event.
    pub fn handle_event(&mut self, now: std::time::Instant, s: &mut Session, ev: Event) {
        match ev {
            Event::Ready => self.reconcile(now, s),
            Event::BarClosed {
                symbol_id,
                period,
                bar,
                ..
            } => {
                let key = (symbol_id, period as i32);
                let Some(st) = self.streams.get_mut(&key) else {
                    self.violations
                        .push(format!("a bar of a stream not subscribed: {key:?}"));
                    return;
                };
                let next = st.bars.last().map(|b| b.time);
                let want = match next {
                    Some(t) => st.expected.iter().copied().find(|x| *x > t),
                    None => Some(bar.open_time),
                };
                if want != Some(bar.open_time) {
                    let what = if next.is_some_and(|t| bar.open_time <= t) {
                        "duplicated"
                    } else {
                        "missed"
                    };
                    self.violations.push(format!(
                        "{} {}: bar {} after {:?}: a bar was {what} (expected {:?})",
                        st.symbol,
                        st.tf.as_str(),
                        bar.open_time,
                        next,
                        want
                    ));
                    return;
                }
                let seq = st.bars.last().map_or(1, |b| b.seq + 1);
                st.bars.push(KeptBar {
                    time: bar.open_time,
                    ohlc: bar.ohlc_f64(st.digits),
                    volume: bar.volume.max(0) as u64,
                    seq,
                });
                let i = st.bars.len() - 1;
                if self.connected {
                    self.send_bar(key, i, false, false);
                }
            }
            Event::BarRevised {
                symbol_id,
                period,
                history,
                ..
            } => {
                let key = (symbol_id, period as i32);
                if let Some(st) = self.streams.get_mut(&key)
                    && let Some(i) = st.bars.iter().position(|b| b.time == history.open_time)
                {
                    st.bars[i].ohlc = history.ohlc_f64(st.digits);
                    st.revised.insert(history.open_time);
                    st.bars[i].volume = history.volume.max(0) as u64;
                    if self.connected {
                        self.send_bar(key, i, false, true);
                    }
                }
            }
            Event::Execution { request, event } => {
                let answered = request.and_then(|id| self.requests.remove(&id).map(|r| (id, r)));
                self.on_execution(now, s, answered.map(|(_, r)| r), &event);
            }
            Event::OrderError { request, event } => {
                self.refused += 1;
                if let Some(r) = request.and_then(|id| self.requests.remove(&id)) {
                    self.on_refused(now, s, r, &event.error_code);
                }
            }
            Event::RequestError { id, code, .. } => {
                if self.requests.contains_key(&id) {
                    self.refused += 1;
                }
                if let Some(r) = self.requests.remove(&id) {
                    self.on_refused(now, s, r, code.as_str());
                }
            }
            Event::RequestOutcomeUnknown { id, .. } => {
                self.unknown += 1;
                if let Some(r) = self.requests.remove(&id) {
                    // Never resent: looked up by reconciling.
                    if let Some(m) = self.model_of(&r) {
                        let m = self.models.get_mut(&m).expect("model of a request");
                        m.expect_sync = false;
                        m.in_flight = m.in_flight.saturating_sub(1);
                        m.entry_after_exit = None;
                        if m.in_flight == 0 {
                            m.ack = None;
                        }
                    }
                    self.reconcile(now, s);
                }
            }
            Event::RequestNotSent { id, .. } => {
                if let Some(r) = self.requests.remove(&id) {
                    match r {
                        // It never reached the broker: an exit is sent again (exits are never
                        // given up), an entry is given up (no chasing).
                        Req::Exit {
                            model,
                            position,
                            volume,
                        } => self.send_exit(now, s, &model, position, volume, false),
                        Req::Entry { model, .. } => {
                            let m = self.models.get_mut(&model).expect("model of a request");
                            m.expect_sync = false;
                            m.in_flight = m.in_flight.saturating_sub(1);
                        }
                        Req::Reconcile => self.reconcile(now, s),
                    }
                }
            }
            Event::Response { id, payload } => {
                if let Some(Req::Reconcile) = self.requests.remove(&id)
                    && let Payload::ReconcileRes(res) = payload
                {
                    let mut fresh = BTreeMap::new();
                    for p in res.position {
                        let Some(label) = p.trade_data.label.clone() else {
                            continue;
                        };
                        if !self.models.contains_key(&label) {
                            continue;
                        }
                        fresh.insert(
                            p.position_id,
                            RealPos {
                                model: label,
                                dir: side_dir(p.trade_data.trade_side),
                                volume: p.trade_data.volume,
                            },
                        );
                    }
                    self.positions = fresh;
                }
            }
            Event::LateResponse { .. } => {}
            Event::TokensRefreshed { .. } => self.refreshes += 1,
            _ => {}
        }
    }

    fn model_of(&self, r: &Req) -> Option<String> {
        match r {
            Req::Entry { model, .. } | Req::Exit { model, .. } => Some(model.clone()),
            Req::Reconcile => None,
        }
    }

    fn reconcile(&mut self, now: std::time::Instant, s: &mut Session) {
        if self.requests.values().any(|r| matches!(r, Req::Reconcile)) {
            return;
        }
        let req = ProtoOaReconcileReq {
            payload_type: None,
            ctid_trader_account_id: self.account_id,
            return_protection_orders: None,
        };
        if let Ok(id) = s.send_request(now, req) {
            self.requests.insert(id, Req::Reconcile);
        }
    }

    fn on_execution(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        answered: Option<Req>,
        ev: &ProtoOaExecutionEvent,
    ) {
        if let Some(r) = answered {
            self.accepted.push(r);
        }
        // Positions follow every fill, answered or not (a late fill of an order whose outcome
        // was unknown counts too).
        let filled = ev.execution_type == ProtoOaExecutionType::OrderFilled as i32;
        let cancelled = ev.execution_type == ProtoOaExecutionType::OrderCancelled as i32;
        if filled && let Some(p) = &ev.position {
            let label = p.trade_data.label.clone().unwrap_or_default();
            if p.position_status == ProtoOaPositionStatus::PositionStatusClosed as i32
                || p.trade_data.volume == 0
            {
                self.positions.remove(&p.position_id);
            } else if self.models.contains_key(&label) {
                self.positions.insert(
                    p.position_id,
                    RealPos {
                        model: label,
                        dir: side_dir(p.trade_data.trade_side),
                        volume: p.trade_data.volume,
                    },
                );
            }
        }
        if !(filled || cancelled) {
            return;
        }
        let Some(o) = &ev.order else { return };
        let at = self.accepted.iter().position(|r| match r {
            Req::Entry { coid, .. } => o.client_order_id.as_deref() == Some(coid.as_str()),
            Req::Exit { position, .. } => {
                o.closing_order == Some(true)
                    && ev.position.as_ref().map(|p| p.position_id) == Some(*position)
            }
            Req::Reconcile => false,
        });
        let Some(at) = at else { return };
        let r = self.accepted.remove(at);
        let price = o.execution_price.unwrap_or(0.0);
        let ticket = ev
            .position
            .as_ref()
            .map_or(0, |p| p.position_id.max(0) as u64);
        match r {
            Req::Exit { model, .. } => {
                if cancelled {
                    self.exit_refusals.push(format!("{model}: exit cancelled"));
                }
                self.leg_done(now, s, &model, !cancelled, ticket, price, "CANCELLED");
            }
            Req::Entry { model, .. } => {
                self.leg_done(now, s, &model, !cancelled, ticket, price, "CANCELLED");
            }
            Req::Reconcile => {}
        }
    }

    fn on_refused(&mut self, now: std::time::Instant, s: &mut Session, r: Req, code: &str) {
        match r {
            Req::Exit {
                model, position, ..
            } => {
                if code == "POSITION_NOT_FOUND" {
                    // Already closed (its fill was lost, or reconciling had not caught up):
                    // the exit's goal holds.
                    self.positions.remove(&position);
                    self.leg_done(now, s, &model, true, position.max(0) as u64, 0.0, code);
                } else {
                    // The broker's refusal (a market shut for the night is the only one
                    // expected); the position stays and the next SIGNAL exits again.
                    if code != "MARKET_CLOSED" {
                        self.exit_refusals
                            .push(format!("{model}: exit refused: {code}"));
                    }
                    self.leg_done(now, s, &model, false, 0, 0.0, code);
                }
                self.reconcile(now, s);
            }
            Req::Entry { model, .. } => {
                self.leg_done(now, s, &model, false, 0, 0.0, code);
            }
            Req::Reconcile => {}
        }
    }

    /// One order of a model's transition finished (`ok`: filled).
    #[allow(clippy::too_many_arguments)]
    fn leg_done(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        model: &str,
        ok: bool,
        ticket: u64,
        price: f64,
        code: &str,
    ) {
        let real = self.real_dir(model);
        let Some(m) = self.models.get_mut(model) else {
            return;
        };
        m.in_flight = m.in_flight.saturating_sub(1);
        if !ok {
            m.expect_sync = false;
            m.entry_after_exit = None;
        }
        if m.in_flight == 0
            && let Some((dir, coid)) = m.entry_after_exit.take()
        {
            self.send_entry(now, s, model, dir, coid);
            return;
        }
        if m.in_flight > 0 {
            return;
        }
        if m.expect_sync && Some(real) != m.last_target {
            let t = m.last_target;
            self.violations.push(format!(
                "{model}: real direction {real} ≠ virtual {t:?} after an allowed transition filled"
            ));
        }
        let m = self.models.get_mut(model).expect("looked up above");
        m.expect_sync = false;
        if let Some((action, bt, seq)) = m.ack.take() {
            let outcome = if ok && price > 0.0 {
                Outcome::Ok { ticket, price }
            } else if ok {
                // Nothing was filled now (the position was already closed).
                Outcome::Hold
            } else {
                Outcome::Fail {
                    reason: if code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                        && !code.is_empty()
                    {
                        code
                    } else {
                        "BROKER"
                    },
                }
            };
            self.ack(model, action, outcome, bt, seq);
        }
    }

    fn ack(&mut self, model: &str, action: Action, outcome: Outcome<'_>, bt: i64, seq: u64) {
        let Some(m) = self.models.get(model) else {
            return;
        };
        let st = &self.streams[&m.stream];
        let (symbol, tf) = (st.symbol.clone(), st.tf);
        self.line(Message::Ack(Ack {
            symbol: &symbol,
            action,
            outcome,
            tf: Some(tf),
            bar_time: Some(bt),
            seq: Some(seq),
        }));
    }

    fn send_entry(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        model: &str,
        dir: i8,
        coid: String,
    ) {
        // Journaled before it goes out; never used twice.
        if !self.journal.insert(coid.clone()) {
            let m = self.models.get_mut(model).expect("model");
            m.expect_sync = false;
            return;
        }
        let m = &self.models[model];
        let symbol_id = self.streams[&m.stream].symbol_id;
        let req = ProtoOaNewOrderReq {
            ctid_trader_account_id: self.account_id,
            symbol_id,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: if dir > 0 {
                ProtoOaTradeSide::Buy as i32
            } else {
                ProtoOaTradeSide::Sell as i32
            },
            volume: m.volume,
            label: Some(model.to_string()),
            client_order_id: Some(coid.clone()),
            ..Default::default()
        };
        match s.send_request(now, req) {
            Ok(id) => {
                self.orders += 1;
                self.requests.insert(
                    id,
                    Req::Entry {
                        model: model.to_string(),
                        coid,
                    },
                );
                self.models.get_mut(model).expect("model").in_flight += 1;
            }
            Err(e) => self
                .violations
                .push(format!("{model}: entry not queued: {e}")),
        }
    }

    fn send_exit(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        model: &str,
        position: i64,
        volume: i64,
        count: bool,
    ) {
        let req = ProtoOaClosePositionReq {
            payload_type: None,
            ctid_trader_account_id: self.account_id,
            position_id: position,
            volume,
        };
        match s.send_request(now, req) {
            Ok(id) => {
                self.orders += 1;
                self.requests.insert(
                    id,
                    Req::Exit {
                        model: model.to_string(),
                        position,
                        volume,
                    },
                );
                if count {
                    self.models.get_mut(model).expect("model").in_flight += 1;
                }
            }
            Err(e) => self
                .violations
                .push(format!("{model}: exit not queued: {e}")),
        }
    }

    /// Lines from the predictor.
    pub fn handle_predictor_lines(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        lines: &[String],
    ) {
        for line in lines {
            let msg = match oracle_ipc::parse(line) {
                Ok(m) => m,
                Err(e) => {
                    self.violations.push(format!(
                        "the predictor sent an invalid line {line:?}: {e:?}"
                    ));
                    continue;
                }
            };
            match msg {
                Message::History(h) => {
                    let key = self
                        .streams
                        .iter()
                        .find(|(_, st)| st.symbol == h.symbol && st.tf == h.tf)
                        .map(|(k, _)| *k);
                    let Some(key) = key else {
                        self.violations
                            .push(format!("HISTORY for an unknown stream: {line}"));
                        continue;
                    };
                    let n = self.streams[&key].bars.len();
                    let from = n.saturating_sub(h.count as usize);
                    for i in from..n {
                        self.send_bar(key, i, true, false);
                    }
                    let st = &self.streams[&key];
                    let (symbol, tf) = (st.symbol.clone(), st.tf);
                    self.line(Message::HistoryEnd(HistoryEnd {
                        symbol: &symbol,
                        tf,
                        count: (n - from) as u32,
                    }));
                }
                Message::Signal(sig) => self.on_signal(now, s, &sig),
                _ => {}
            }
        }
    }

    fn on_signal(
        &mut self,
        now: std::time::Instant,
        s: &mut Session,
        sig: &oracle_ipc::Signal<'_>,
    ) {
        let found = self.models.values().find(|m| {
            let st = &self.streams[&m.stream];
            st.symbol == sig.symbol && Some(st.tf) == sig.tf
        });
        let Some(name) = found.map(|m| m.name.clone()) else {
            self.violations
                .push(format!("a SIGNAL for no model: {sig:?}"));
            return;
        };
        let (Some(bt), Some(seq)) = (sig.bar_time, sig.seq) else {
            self.violations
                .push(format!("a SIGNAL without BT/SEQ: {sig:?}"));
            return;
        };
        let dir = sig.action.direction();
        let real = self.real_dir(&name);
        let m = self.models.get_mut(&name).expect("found above");
        if !m.handled.insert(seq) {
            self.duplicate_signals += 1;
            return;
        }
        let prev = m.last_target.replace(dir);
        if m.in_flight > 0 {
            // The previous transition is still in flight: this one waits for the next signal
            // (the real executor's batches do not overlap per model either).
            m.expect_sync = false;
            self.ack(&name, sig.action, Outcome::Hold, bt, seq);
            return;
        }
        if real == dir {
            self.ack(&name, sig.action, Outcome::Hold, bt, seq);
            return;
        }
        let transition = prev.is_some_and(|p| p != dir);
        let entry = dir != 0 && transition;
        let exits: Vec<(i64, i64)> = self
            .positions
            .iter()
            .filter(|(_, p)| p.model == name)
            .map(|(id, p)| (*id, p.volume))
            .collect();
        let coid = format!("dst-{name}-{bt}");
        let m = self.models.get_mut(&name).expect("found above");
        m.expect_sync = entry || dir == 0;
        m.ack = Some((sig.action, bt, seq));
        if dir != 0 && !transition {
            self.missed_entries += 1;
            m.expect_sync = false;
        }
        if !exits.is_empty() {
            if entry {
                m.entry_after_exit = Some((dir, coid));
            }
            for (pos, vol) in exits {
                self.send_exit(now, s, &name, pos, vol, true);
            }
        } else if entry {
            self.send_entry(now, s, &name, dir, coid);
        } else {
            m.ack = None;
            m.expect_sync = false;
            self.ack(
                &name,
                sig.action,
                Outcome::WaitSync {
                    reason: "MISSED_ENTRY",
                },
                bt,
                seq,
            );
        }
    }
}

fn side_dir(trade_side: i32) -> i8 {
    if trade_side == ProtoOaTradeSide::Buy as i32 {
        1
    } else {
        -1
    }
}
