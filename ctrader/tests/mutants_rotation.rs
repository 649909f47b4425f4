//! Token rotation in the session (refresh, store before use, refresh ahead of expiry) on the
//! edges `scripts/mutants --area rotation` found unpinned by `tests/session.rs`. A minimal
//! scripted server on a virtual clock: no sockets, no sleeps; time is a parameter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use oracle_ctrader::frame::{FrameDecoder, encode_envelope};
use oracle_ctrader::proto::*;
use oracle_ctrader::session::*;
use oracle_ctrader::{Credentials, Secret};

const ACC: i64 = 4242;
/// `ProtoOARefreshTokenReq`'s payload type.
const REFRESH_TOKEN_REQ: u32 = 2173;
/// `ProtoOAAccountAuthReq`'s payload type.
const ACCOUNT_AUTH_REQ: u32 = 2102;
/// The wall clock at the start (Unix ms, a whole minute).
const T0_UTC_MS: i64 = 1_700_000_040_000;

/// A session and the server it talks to.
struct Server {
    s: Session,
    t0: Instant,
    now: Instant,
    connected: bool,
    decoder: FrameDecoder,
    /// Every client message: (seconds since t0, payload type, the token an auth or a refresh
    /// carries).
    sent: Vec<(u64, u32, Option<String>)>,
    events: Vec<Event>,
    /// Errors for the next account auths, in order (then success).
    account_auth_errors: VecDeque<&'static str>,
    /// `expiresIn` of the refreshed tokens (seconds).
    expires_in: i64,
    refreshes: u32,
    /// Answer refreshes (else they stay unanswered).
    answer_refresh: bool,
    /// Refuse the next refresh with this common error.
    refresh_refusal: Option<ProtoErrorRes>,
}

impl Server {
    fn new(edit: impl FnOnce(&mut SessionConfig)) -> Server {
        let creds = Credentials {
            client_id: Secret::new("CLIENT-ID"),
            client_secret: Secret::new("CLIENT-SECRET"),
            access_token: Secret::new("ACCESS-TOKEN-1"),
            refresh_token: Some(Secret::new("REFRESH-TOKEN-1")),
        };
        let mut cfg = SessionConfig::new(creds, ACC);
        edit(&mut cfg);
        let t0 = Instant::now();
        Server {
            s: Session::new(cfg, t0, T0_UTC_MS),
            t0,
            now: t0,
            connected: false,
            decoder: FrameDecoder::default(),
            sent: vec![],
            events: vec![],
            account_auth_errors: VecDeque::new(),
            expires_in: 2_628_000,
            refreshes: 0,
            answer_refresh: true,
            refresh_refusal: None,
        }
    }

    fn el(&self) -> u64 {
        (self.now - self.t0).as_secs()
    }

    fn deliver(&mut self, payload: impl Into<Payload>, id: Option<String>) {
        if !self.connected {
            return;
        }
        let bytes = encode_envelope(&Envelope::new(payload, id));
        self.s.handle_bytes(self.now, &bytes);
        self.drive();
    }

    fn drive(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(e) = self.s.poll_event() {
                self.events.push(e);
                progressed = true;
            }
            if let Some(t) = self.s.poll_transmit() {
                progressed = true;
                match t {
                    Transmit::Connect => {
                        self.connected = true;
                        self.decoder = FrameDecoder::default();
                        self.s.handle_connected(self.now);
                    }
                    Transmit::Close => self.connected = false,
                    Transmit::Bytes(b) => {
                        assert!(self.connected, "bytes written while not connected");
                        self.decoder.feed(&b);
                        while let Some(f) = self.decoder.next_frame().expect("a frame") {
                            let env = Envelope::decode(&f).expect("an envelope");
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
        let pt = env.payload.payload_type();
        let token = match &env.payload {
            Payload::AccountAuthReq(r) => Some(r.access_token.clone()),
            Payload::RefreshTokenReq(r) => Some(r.refresh_token.clone()),
            _ => None,
        };
        self.sent.push((self.el(), pt, token));
        match env.payload {
            Payload::ApplicationAuthReq(_) => {
                self.deliver(ProtoOaApplicationAuthRes::default(), id)
            }
            Payload::AccountAuthReq(r) => match self.account_auth_errors.pop_front() {
                Some(code) => self.deliver(
                    ProtoOaErrorRes {
                        error_code: code.into(),
                        description: Some(format!("{code} (test)")),
                        ..Default::default()
                    },
                    id,
                ),
                None => self.deliver(
                    ProtoOaAccountAuthRes {
                        payload_type: None,
                        ctid_trader_account_id: r.ctid_trader_account_id,
                    },
                    id,
                ),
            },
            Payload::RefreshTokenReq(_) if self.refresh_refusal.is_some() => {
                let e = self.refresh_refusal.take().expect("a refusal");
                self.deliver(e, id);
            }
            Payload::RefreshTokenReq(_) if self.answer_refresh => {
                self.refreshes += 1;
                let n = self.refreshes + 1;
                self.deliver(
                    ProtoOaRefreshTokenRes {
                        payload_type: None,
                        access_token: format!("ACCESS-TOKEN-{n}"),
                        token_type: "bearer".into(),
                        expires_in: self.expires_in,
                        refresh_token: format!("REFRESH-TOKEN-{n}"),
                    },
                    id,
                );
            }
            _ => {}
        }
    }

    /// Moves the virtual clock to `secs` after the start in steps of at most 5 s, the server
    /// sending a heartbeat each step, the session's timers firing on the way.
    fn advance_to(&mut self, secs: u64) {
        let target = self.t0 + Duration::from_secs(secs);
        let mut still = 0;
        while self.now < target {
            let step = (self.now + Duration::from_secs(5)).min(target);
            let next = self.s.poll_timeout().filter(|t| *t < step).unwrap_or(step);
            still = if next <= self.now { still + 1 } else { 0 };
            assert!(
                still < 100,
                "timers keep firing at {} s without time moving",
                self.el()
            );
            self.now = next.max(self.now);
            if self.connected && self.now == step {
                self.deliver(ProtoHeartbeatEvent { payload_type: None }, None);
            }
            self.s.handle_timeout(self.now);
            self.drive();
        }
    }

    fn start(&mut self) {
        self.s.start(self.now);
        self.drive();
    }

    /// The access tokens sent in account auths, in order.
    fn auth_tokens(&self) -> Vec<String> {
        self.tokens_of(ACCOUNT_AUTH_REQ)
    }

    fn tokens_of(&self, payload_type: u32) -> Vec<String> {
        self.sent
            .iter()
            .filter(|(_, pt, _)| *pt == payload_type)
            .filter_map(|(_, _, t)| t.clone())
            .collect()
    }

    /// When (seconds since the start) a refresh request went out.
    fn refresh_times(&self) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, pt, _)| *pt == REFRESH_TOKEN_REQ)
            .map(|(t, _, _)| *t)
            .collect()
    }
}

/// Store before use: a pair stored while the connection is down does not authorize on the dead
/// connection; the reconnect's account auth uses the stored token, once.
#[test]
fn a_pair_stored_while_disconnected_is_used_by_the_reconnect_not_on_the_dead_connection() {
    let mut p = Server::new(|c| c.confirm_token_store = true);
    p.account_auth_errors.push_back("CH_ACCESS_TOKEN_INVALID");
    p.start();
    assert!(p.s.tokens_unstored(), "refreshed, waiting for the store");
    assert_eq!(p.auth_tokens(), vec!["ACCESS-TOKEN-1"]);
    p.s.handle_disconnected(p.now, "reset by peer".into());
    p.connected = false;
    p.drive();
    assert_eq!(p.s.state(), State::Disconnected);
    p.s.handle_tokens_stored(p.now);
    p.drive();
    assert_eq!(
        p.s.state(),
        State::Disconnected,
        "no account auth without a connection"
    );
    assert!(!p.s.tokens_unstored());
    p.advance_to(5);
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(p.auth_tokens(), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
}

/// The refresh ahead of expiry fires only while Ready: not during the start's authorization.
#[test]
fn with_an_expiry_already_due_the_session_authorizes_first_and_refreshes_once_ready() {
    let mut p = Server::new(|c| {
        // Due at once: the margin is larger than what is left.
        c.access_expires_at_ms = Some(T0_UTC_MS + 10_000);
        c.refresh_margin = Duration::from_secs(60);
    });
    p.start();
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(p.refresh_times(), Vec::<u64>::new(), "nothing before Ready");
    p.advance_to(1);
    assert_eq!(p.refresh_times(), vec![0], "refreshed as soon as Ready");
    assert_eq!(p.auth_tokens(), vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]);
    p.advance_to(600);
    assert_eq!(
        p.refresh_times(),
        vec![0],
        "once: the new token lives a month"
    );
}

/// A short-lived token is refreshed at half its lifetime (the margin is capped at half), so it is
/// not refreshed in a loop and not left to expire.
#[test]
fn a_refreshed_token_shorter_lived_than_twice_the_margin_is_refreshed_at_half_its_lifetime() {
    let mut p = Server::new(|c| {
        c.access_expires_at_ms = Some(T0_UTC_MS + 100_000);
        c.refresh_margin = Duration::from_secs(3_600);
    });
    p.expires_in = 600;
    p.start();
    p.advance_to(1);
    assert_eq!(p.refresh_times(), vec![0]);
    p.advance_to(299);
    assert_eq!(p.refresh_times(), vec![0], "not before half the 600 s");
    p.advance_to(305);
    assert_eq!(p.refresh_times(), vec![0, 300], "at half the lifetime");
}

/// While a refreshed pair waits for its store, no refresh ahead goes out (it would spend the
/// refresh token of a pair nobody kept).
#[test]
fn no_refresh_ahead_while_the_refreshed_pair_waits_for_its_store() {
    let mut p = Server::new(|c| {
        c.confirm_token_store = true;
        c.access_expires_at_ms = Some(T0_UTC_MS + 20_000);
        c.refresh_margin = Duration::from_secs(10);
    });
    p.expires_in = 20;
    p.start();
    p.advance_to(12);
    assert_eq!(p.refresh_times(), vec![10]);
    assert!(p.s.tokens_unstored());
    // Half the new 20 s lifetime passes, and more: still unstored, so no second refresh.
    p.advance_to(60);
    assert_eq!(p.refresh_times(), vec![10]);
    p.s.handle_tokens_stored(p.now);
    p.drive();
    p.advance_to(62);
    assert_eq!(
        p.refresh_times(),
        vec![10, 60],
        "due since 20 s: refreshed once stored"
    );
}

/// A refresh whose answer is lost with the connection leaves the refresh token in place: the
/// reconnect can refresh again with it (if the server did not spend it, that works; if it did,
/// the refusal is clean), instead of failing for want of a refresh token.
#[test]
fn a_refresh_lost_with_the_connection_keeps_the_refresh_token_for_the_reconnect() {
    let mut p = Server::new(|_| {});
    p.answer_refresh = false;
    p.account_auth_errors.push_back("CH_ACCESS_TOKEN_INVALID");
    p.start();
    assert_eq!(p.tokens_of(REFRESH_TOKEN_REQ), vec!["REFRESH-TOKEN-1"]);
    p.s.handle_disconnected(p.now, "reset by peer".into());
    p.connected = false;
    p.drive();
    // The reconnect's account auth is refused again: the session refreshes with the same token.
    p.answer_refresh = true;
    p.account_auth_errors.push_back("CH_ACCESS_TOKEN_INVALID");
    p.advance_to(5);
    assert_eq!(
        p.tokens_of(REFRESH_TOKEN_REQ),
        vec!["REFRESH-TOKEN-1", "REFRESH-TOKEN-1"]
    );
    assert!(
        !p.events
            .iter()
            .any(|e| matches!(e, Event::AuthFailed { .. })),
        "{:?}",
        p.events
    );
    assert_eq!(p.s.state(), State::Ready);
    assert_eq!(
        p.auth_tokens(),
        vec!["ACCESS-TOKEN-1", "ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]
    );
}

/// A refresh the server refuses with a common error is a fatal auth failure that carries the
/// server's description (what the operator reads), not a bare code.
#[test]
fn a_refresh_refused_with_a_common_error_fails_with_the_servers_description() {
    let mut p = Server::new(|_| {});
    p.account_auth_errors.push_back("CH_ACCESS_TOKEN_INVALID");
    p.refresh_refusal = Some(ProtoErrorRes {
        payload_type: None,
        error_code: "INVALID_REQUEST".into(),
        description: Some("refresh token revoked by the user".into()),
        maintenance_end_timestamp: None,
    });
    p.start();
    assert_eq!(p.s.state(), State::Failed);
    assert!(
        p.events.iter().any(|e| matches!(e,
            Event::AuthFailed { description: Some(d), .. } if d.contains("revoked"))),
        "{:?}",
        p.events
    );
}
