//! Broker faults the session must survive, on the broker core's virtual clock (no sockets):
//! BLOCKED_PAYLOAD_TYPE with retryAfter, a maintenance window with its end time,
//! ProtoOAClientDisconnectEvent, CONNECTIONS_LIMIT_EXCEEDED, an answer that never comes.
#![allow(clippy::field_reassign_with_default)] // tests tweak one knob of the defaults

use oracle_sim::bars::{Bar, Period, parse_iso_utc};
use oracle_sim::broker::{Broker, Output};
use oracle_sim::config::{
    BrokerConfig, DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault,
};
use oracle_sim::market::{Market, Start};
use oracle_sim::msg::*;
use oracle_sim::symbols::{SymbolData, SymbolSpec};

const ACC: i64 = 1001;
const NOW0: i64 = 1_700_000_000_000;

fn eurusd() -> SymbolData {
    let t0 = parse_iso_utc("2024-03-04T00:00:00Z").unwrap();
    let bars = (0..8)
        .map(|i| Bar {
            time_ms: t0 + i * 900_000,
            open: 108_400 + i,
            high: 108_450 + i,
            low: 108_380 + i,
            close: 108_420 + i,
            volume: 4,
        })
        .collect();
    SymbolData {
        spec: SymbolSpec::builtin("EURUSD").unwrap(),
        period: Period::M15,
        bars,
    }
}

struct H {
    b: Broker,
    now: i64,
}

impl H {
    fn new(faults: Vec<Fault>) -> Self {
        let mut cfg = BrokerConfig::default();
        cfg.faults = faults;
        H {
            b: Broker::new(cfg, Market::new(vec![eurusd()], Start::AfterBars(4)), NOW0).unwrap(),
            now: NOW0,
        }
    }
    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.b.poll_output()).collect()
    }
    fn sends(outs: &[Output], conn: ConnId) -> Vec<(Option<String>, Event)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Send {
                    conn: c,
                    client_msg_id,
                    event,
                    ..
                } if *c == conn => Some((client_msg_id.clone(), event.clone())),
                _ => None,
            })
            .collect()
    }
    fn closed(outs: &[Output], conn: ConnId) -> bool {
        outs.iter()
            .any(|o| matches!(o, Output::Close { conn: c, .. } if *c == conn))
    }
    fn req(&mut self, conn: ConnId, cmid: &str, req: Request) -> Vec<Output> {
        self.b
            .handle_request(self.now, conn, Some(cmid.into()), req);
        self.drain()
    }
    fn app_auth(&mut self, conn: ConnId) -> Vec<Output> {
        self.req(
            conn,
            "app",
            Request::ApplicationAuth {
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: DEFAULT_CLIENT_SECRET.into(),
            },
        )
    }
    fn login(&mut self) -> ConnId {
        let c = self.b.connect(self.now);
        let outs = self.app_auth(c);
        assert_eq!(
            Self::sends(&outs, c),
            vec![(Some("app".into()), Event::ApplicationAuthRes)]
        );
        let outs = self.req(
            c,
            "acc",
            Request::AccountAuth {
                account_id: ACC,
                access_token: DEFAULT_ACCESS_TOKEN.into(),
            },
        );
        assert_eq!(
            Self::sends(&outs, c),
            vec![(
                Some("acc".into()),
                Event::AccountAuthRes { account_id: ACC }
            )]
        );
        c
    }
}

fn order(coid: &str) -> Request {
    Request::NewOrder(NewOrder {
        account_id: ACC,
        symbol_id: 1,
        order_type: OrderType::Market,
        side: Side::Buy,
        volume: 100_000,
        stop_loss: None,
        take_profit: None,
        relative_stop_loss: None,
        relative_take_profit: None,
        comment: None,
        base_slippage_price: None,
        slippage_in_points: None,
        label: None,
        position_id: None,
        client_order_id: Some(coid.into()),
    })
}

#[test]
fn blocked_payload_type_refuses_with_retry_after_and_does_not_execute() {
    let mut h = H::new(vec![Fault::Blocked {
        kind: Some("NewOrderReq".into()),
        retry_after_s: 3,
        every: 1,
        times: Some(1),
    }]);
    let c = h.login();
    let outs = h.req(c, "o1", order("EURUSD-1"));
    assert_eq!(
        H::sends(&outs, c),
        vec![(
            Some("o1".into()),
            Event::Refused {
                code: ErrorCode::BlockedPayloadType,
                description: "NewOrderReq is blocked for 3 s".into(),
                account_id: Some(ACC),
                retry_after_s: Some(3),
                maintenance_end_ms: None,
            }
        )]
    );
    assert_eq!(
        h.b.account_view(ACC).unwrap().open_positions,
        0,
        "not executed"
    );
    assert!(!H::closed(&outs, c), "the connection stays open");
    // Other payloads are not blocked, and times=1: the resend fills.
    h.now += 3_000;
    let outs = h.req(c, "o2", order("EURUSD-1"));
    assert!(
        H::sends(&outs, c)
            .iter()
            .any(|(_, e)| matches!(e, Event::Execution { .. })),
        "{outs:?}"
    );
    assert_eq!(h.b.account_view(ACC).unwrap().open_positions, 1);
}

#[test]
fn a_maintenance_window_disconnects_everyone_then_refuses_with_its_end_until_it_ends() {
    let mut h = H::new(vec![Fault::Maintenance {
        after_s: 60,
        for_s: 600,
    }]);
    let c = h.login();
    assert_eq!(h.b.poll_timeout(), Some(NOW0 + 10_000), "heartbeat first");
    h.now = NOW0 + 10_000;
    h.b.handle_timeout(h.now);
    h.drain();
    h.b.handle_request(h.now, c, None, Request::Heartbeat);
    h.now = NOW0 + 20_000;
    h.b.handle_timeout(h.now);
    h.drain();
    h.b.handle_request(h.now, c, None, Request::Heartbeat);
    // The window's start is a timer.
    h.now = NOW0 + 60_000;
    assert!(h.b.poll_timeout().is_some_and(|t| t <= h.now));
    h.b.handle_timeout(h.now);
    let outs = h.drain();
    let sends = H::sends(&outs, c);
    assert!(
        matches!(&sends[..], [(None, Event::ClientDisconnect { reason })] if reason.contains("maintenance")),
        "{sends:?}"
    );
    assert!(H::closed(&outs, c));
    h.b.disconnect(c, h.now);
    // A reconnect meanwhile: refused with the end, closed.
    h.now = NOW0 + 100_000;
    let c2 = h.b.connect(h.now);
    let outs = h.app_auth(c2);
    assert_eq!(
        H::sends(&outs, c2),
        vec![(
            Some("app".into()),
            Event::Refused {
                code: ErrorCode::ServerIsUnderMaintenance,
                description: "server is under maintenance".into(),
                account_id: None,
                retry_after_s: None,
                maintenance_end_ms: Some(NOW0 + 660_000),
            }
        )]
    );
    assert!(H::closed(&outs, c2));
    h.b.disconnect(c2, h.now);
    // At its end: business as usual.
    h.now = NOW0 + 660_000;
    h.login();
}

#[test]
fn the_client_disconnect_fault_sends_the_event_then_closes() {
    let mut h = H::new(vec![Fault::ClientDisconnect {
        after: 3,
        times: Some(1),
    }]);
    let c = h.login(); // 2 frames
    let outs = h.req(c, "v", Request::Version);
    let sends = H::sends(&outs, c);
    assert!(
        matches!(
            &sends[..],
            [
                (_, Event::VersionRes { .. }),
                (None, Event::ClientDisconnect { .. })
            ]
        ),
        "{sends:?}"
    );
    assert!(matches!(
        outs.last(),
        Some(Output::Close { graceful: true, .. })
    ));
    // times=1: the next connection is left alone.
    let c = h.login();
    let outs = h.req(c, "v", Request::Version);
    assert_eq!(H::sends(&outs, c).len(), 1);
    assert!(!H::closed(&outs, c));
}

#[test]
fn connections_limit_refuses_an_application_auth_beyond_max_and_closes() {
    let mut h = H::new(vec![Fault::ConnectionsLimit {
        max: 1,
        times: None,
    }]);
    let first = h.login();
    let c = h.b.connect(h.now);
    let outs = h.app_auth(c);
    assert!(
        matches!(
            &H::sends(&outs, c)[..],
            [(
                Some(_),
                Event::Refused {
                    code: ErrorCode::ConnectionsLimitExceeded,
                    ..
                }
            )]
        ),
        "{outs:?}"
    );
    assert!(H::closed(&outs, c));
    h.b.disconnect(c, h.now);
    // Once the first one is gone, a new one gets in.
    h.b.disconnect(first, h.now);
    h.login();
}

#[test]
fn an_answer_that_never_comes_executes_the_request_but_sends_nothing_for_it() {
    let mut h = H::new(vec![Fault::NoAnswer {
        kind: "NewOrderReq".into(),
        every: 1,
        times: Some(1),
    }]);
    let c = h.login();
    let outs = h.req(c, "o1", order("EURUSD-1"));
    assert!(
        H::sends(&outs, c)
            .iter()
            .all(|(id, _)| id.as_deref() != Some("o1")),
        "{outs:?}"
    );
    assert_eq!(h.b.account_view(ACC).unwrap().open_positions, 1, "executed");
    let outs = h.req(c, "o2", order("EURUSD-2"));
    assert!(
        H::sends(&outs, c)
            .iter()
            .any(|(id, e)| id.as_deref() == Some("o2") && matches!(e, Event::Execution { .. }))
    );
}

#[test]
fn the_new_faults_parse_and_bad_ones_name_the_key() {
    assert_eq!(
        Fault::parse("blocked:retry-after=5,kind=NewOrderReq,times=2").unwrap(),
        Fault::Blocked {
            kind: Some("NewOrderReq".into()),
            retry_after_s: 5,
            every: 1,
            times: Some(2)
        }
    );
    assert_eq!(
        Fault::parse("maintenance:after=30,for=120").unwrap(),
        Fault::Maintenance {
            after_s: 30,
            for_s: 120
        }
    );
    assert_eq!(
        Fault::parse("client-disconnect:after=7").unwrap(),
        Fault::ClientDisconnect {
            after: 7,
            times: None
        }
    );
    assert_eq!(
        Fault::parse("connections-limit:max=2,times=1").unwrap(),
        Fault::ConnectionsLimit {
            max: 2,
            times: Some(1)
        }
    );
    assert_eq!(
        Fault::parse("no-answer:kind=GetTrendbarsReq,every=3").unwrap(),
        Fault::NoAnswer {
            kind: "GetTrendbarsReq".into(),
            every: 3,
            times: None
        }
    );
    let e = Fault::parse("blocked:kind=NewOrderReq").unwrap_err();
    assert!(e.contains("retry-after"), "{e}");
    let e = Fault::parse("maintenance:after=1,for=0").unwrap_err();
    assert!(e.contains("for=D"), "{e}");
    let e = Fault::parse("no-answer:every=2").unwrap_err();
    assert!(e.contains("kind=REQ"), "{e}");
}
