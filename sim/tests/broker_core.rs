//! Broker-core tests: no sockets, no sleeps — a virtual clock and the sans-IO API.
#![allow(clippy::field_reassign_with_default)] // tests tweak one knob of the defaults

use oracle_sim::bars::{Bar, Period, PeriodExt, parse_iso_utc};
use oracle_sim::broker::{BadFrame, Broker, Output};
use oracle_sim::config::{
    AccountConfig, BrokerConfig, DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN, Fault, Speed, TokenConfig,
};
use oracle_sim::market::{Market, Start};
use oracle_sim::msg::*;
use oracle_sim::symbols::{SymbolData, SymbolSpec, TrainingConfig, synthetic};

const T0: &str = "2024-03-04T00:00:00Z"; // a Monday
const ACC: i64 = 1001;

fn t0() -> i64 {
    parse_iso_utc(T0).unwrap()
}

/// The contract's worked example: EURUSD digits 5, spread 7, slippage 2, commission 7.0, pip
/// value 10. Bars: 4 history bars, then bar 4 closes at 1.08500, bar 5 opens at 1.08700.
fn contract_eurusd() -> SymbolData {
    let mut spec = SymbolSpec::builtin("EURUSD").unwrap();
    spec.apply_training_config(&TrainingConfig {
        digits: Some(5),
        point: Some(0.00001),
        pip_value: Some(10.0),
        spread_points: Some(7.0),
        slippage_points: Some(2.0),
        commission_per_lot: Some(7.0),
        lot_sizes: None,
    })
    .unwrap();
    let m = |i: i64, o, h, l, c| Bar {
        time_ms: t0() + i * 900_000,
        open: o,
        high: h,
        low: l,
        close: c,
        volume: 4,
    };
    let bars = vec![
        m(0, 108_400, 108_450, 108_380, 108_420),
        m(1, 108_420, 108_460, 108_400, 108_440),
        m(2, 108_440, 108_470, 108_430, 108_460),
        m(3, 108_460, 108_480, 108_440, 108_470),
        m(4, 108_470, 108_520, 108_460, 108_500),
        m(5, 108_700, 108_750, 108_650, 108_720),
        m(6, 108_720, 108_730, 108_700, 108_710),
    ];
    SymbolData {
        spec,
        period: Period::M15,
        bars,
    }
}

struct H {
    b: Broker,
    now: i64,
}

impl H {
    fn new(cfg: BrokerConfig, data: Vec<SymbolData>, start: Start) -> Self {
        let now = 1_700_000_000_000;
        H {
            b: Broker::new(cfg, Market::new(data, start), now).unwrap(),
            now,
        }
    }
    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.b.poll_output()).collect()
    }
    fn events(&mut self, conn: ConnId) -> Vec<(Option<String>, Event)> {
        self.drain()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send {
                    conn: c,
                    client_msg_id,
                    event,
                    ..
                } if c == conn => Some((client_msg_id, event)),
                _ => None,
            })
            .collect()
    }
    fn req(&mut self, conn: ConnId, req: Request) -> Vec<Event> {
        self.b.handle_request(self.now, conn, Some("m".into()), req);
        self.events(conn).into_iter().map(|e| e.1).collect()
    }
    fn one(&mut self, conn: ConnId, req: Request) -> Event {
        let mut v = self.req(conn, req);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }
    fn login(&mut self) -> ConnId {
        let c = self.b.connect(self.now);
        assert_eq!(
            self.one(
                c,
                Request::ApplicationAuth {
                    client_id: DEFAULT_CLIENT_ID.into(),
                    client_secret: DEFAULT_CLIENT_SECRET.into()
                }
            ),
            Event::ApplicationAuthRes
        );
        assert_eq!(
            self.one(
                c,
                Request::AccountAuth {
                    account_id: ACC,
                    access_token: DEFAULT_ACCESS_TOKEN.into()
                }
            ),
            Event::AccountAuthRes { account_id: ACC }
        );
        c
    }
    fn step(&mut self, n: usize) {
        for _ in 0..n {
            self.b.step_market(self.now);
        }
    }
}

fn code_of(e: &Event) -> ErrorCode {
    match e {
        Event::Error { code, .. } | Event::OrderError { code, .. } => *code,
        other => panic!("not an error: {other:?}"),
    }
}

fn market_order(side: Side, volume: i64) -> Request {
    Request::NewOrder(NewOrder {
        account_id: ACC,
        symbol_id: 1,
        order_type: OrderType::Market,
        side,
        volume,
        stop_loss: None,
        take_profit: None,
        relative_stop_loss: None,
        relative_take_profit: None,
        comment: None,
        base_slippage_price: None,
        slippage_in_points: None,
        label: Some("twin".into()),
        position_id: None,
        client_order_id: Some("EURUSD-1".into()),
    })
}

#[test]
fn auth_errors_and_order_of_checks() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.b.connect(h.now);
    assert_eq!(
        code_of(&h.one(c, Request::Trader { account_id: ACC })),
        ErrorCode::ChClientNotAuthenticated
    );
    let e = h.one(
        c,
        Request::ApplicationAuth {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: "wrong".into(),
        },
    );
    assert_eq!(code_of(&e), ErrorCode::ChClientAuthFailure);
    // ... then the connection is closed
    h.b.handle_request(h.now, c, None, Request::Version);
    assert!(h.drain().is_empty(), "a closed connection gets nothing");

    let c = h.login();
    let e = h.one(
        c,
        Request::AccountAuth {
            account_id: ACC,
            access_token: DEFAULT_ACCESS_TOKEN.into(),
        },
    );
    assert_eq!(code_of(&e), ErrorCode::AlreadyLoggedIn);
    let c2 = h.b.connect(h.now);
    h.one(
        c2,
        Request::ApplicationAuth {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
        },
    );
    assert_eq!(
        code_of(&h.one(
            c2,
            Request::AccountAuth {
                account_id: ACC,
                access_token: "nope".into()
            }
        )),
        ErrorCode::ChAccessTokenInvalid
    );
    assert_eq!(
        code_of(&h.one(c2, Request::Trader { account_id: ACC })),
        ErrorCode::AccountNotAuthorized
    );
    match h.one(
        c2,
        Request::AccountListByToken {
            access_token: DEFAULT_ACCESS_TOKEN.into(),
        },
    ) {
        Event::AccountList {
            scope, accounts, ..
        } => {
            assert_eq!(scope, Scope::Trade);
            assert_eq!(accounts.len(), 1);
            assert_eq!(accounts[0].account_id, ACC);
            assert!(!accounts[0].is_live);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_token_and_refresh_once() {
    let mut cfg = BrokerConfig::default();
    cfg.tokens.push(TokenConfig {
        access_token: "expired".into(),
        refresh_token: "r2".into(),
        scope: Scope::View,
        accounts: vec![ACC],
        expires_in_s: -1,
    });
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    assert_eq!(
        code_of(&h.one(
            c,
            Request::AccountListByToken {
                access_token: "expired".into()
            }
        )),
        ErrorCode::OaAuthTokenExpired
    );
    let (access, refresh) = match h
        .req(
            c,
            Request::RefreshToken {
                refresh_token: DEFAULT_REFRESH_TOKEN.into(),
            },
        )
        .as_slice()
    {
        [
            Event::RefreshTokenRes {
                access_token,
                refresh_token,
                expires_in_s,
            },
            Event::TokenInvalidated { account_ids, .. },
        ] => {
            assert_eq!(*expires_in_s, 2_628_000);
            assert_eq!(account_ids, &vec![ACC]);
            (access_token.clone(), refresh_token.clone())
        }
        other => panic!("{other:?}"),
    };
    // the refresh token worked once
    assert_eq!(
        code_of(&h.one(
            c,
            Request::RefreshToken {
                refresh_token: DEFAULT_REFRESH_TOKEN.into()
            }
        )),
        ErrorCode::ChAccessTokenInvalid
    );
    // the old access token is dead, the account was dropped from the session, the new one works
    assert_eq!(
        code_of(&h.one(c, Request::Trader { account_id: ACC })),
        ErrorCode::AccountNotAuthorized
    );
    assert_eq!(
        code_of(&h.one(
            c,
            Request::AccountAuth {
                account_id: ACC,
                access_token: DEFAULT_ACCESS_TOKEN.into()
            }
        )),
        ErrorCode::ChAccessTokenInvalid
    );
    assert_eq!(
        h.one(
            c,
            Request::AccountAuth {
                account_id: ACC,
                access_token: access
            }
        ),
        Event::AccountAuthRes { account_id: ACC }
    );
    assert!(refresh.starts_with("rt-") && refresh.len() > 20);
}

#[test]
fn token_expiry_while_connected_invalidates_the_session() {
    let mut cfg = BrokerConfig::default();
    cfg.tokens[0].expires_in_s = 60;
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    h.now += 50_000;
    h.b.handle_request(h.now, c, None, Request::Heartbeat);
    h.now += 10_000;
    h.b.handle_timeout(h.now);
    let evs: Vec<Event> = h.events(c).into_iter().map(|e| e.1).collect();
    assert!(evs.iter().any(|e| matches!(e, Event::TokenInvalidated { account_ids, .. } if account_ids == &vec![ACC])), "{evs:?}");
}

/// A soak's repeating token lifetime: the first token and every refreshed one live
/// `token_ttl_s`, so the token expires again at that period while connected.
#[test]
fn a_refreshed_token_expires_again_after_token_ttl() {
    let mut cfg = BrokerConfig::default();
    cfg.tokens[0].expires_in_s = 60;
    cfg.token_ttl_s = 60;
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    let mut refresh = DEFAULT_REFRESH_TOKEN.to_string();
    for round in 0..3 {
        // The client stays active (heartbeats within the idle timeout) for one lifetime.
        for _ in 0..3 {
            h.now += 20_000;
            h.b.handle_request(h.now, c, None, Request::Heartbeat);
        }
        h.b.handle_timeout(h.now);
        let evs: Vec<Event> = h.events(c).into_iter().map(|e| e.1).collect();
        assert!(
            evs.iter().any(|e| matches!(e, Event::TokenInvalidated { account_ids, .. } if account_ids == &vec![ACC])),
            "round {round}: {evs:?}"
        );
        let access = match h
            .req(
                c,
                Request::RefreshToken {
                    refresh_token: refresh.clone(),
                },
            )
            .as_slice()
        {
            [
                Event::RefreshTokenRes {
                    access_token,
                    refresh_token,
                    expires_in_s,
                },
                ..,
            ] => {
                assert_eq!(*expires_in_s, 60, "round {round}");
                refresh = refresh_token.clone();
                access_token.clone()
            }
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(
            h.one(
                c,
                Request::AccountAuth {
                    account_id: ACC,
                    access_token: access
                }
            ),
            Event::AccountAuthRes { account_id: ACC },
            "round {round}"
        );
    }
}

#[test]
fn contract_worked_example_fill_and_close() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    h.step(4); // bar 4's four ticks: bid = 1.08500 (its close)
    let evs = h.req(c, market_order(Side::Buy, 100_000)); // 0.01 lot
    let (pos_id, fill) = match evs.as_slice() {
        [
            Event::Execution {
                exec_type: ExecType::Accepted,
                order: Some(o1),
                position: Some(p1),
                ..
            },
            Event::Execution {
                exec_type: ExecType::Filled,
                order: Some(o),
                position: Some(p),
                deal: Some(d),
                ..
            },
        ] => {
            assert_eq!(o1.status, OrderStatus::Accepted);
            assert_eq!(p1.status, PositionStatus::Created);
            assert_eq!(o.status, OrderStatus::Filled);
            assert_eq!(o.client_order_id.as_deref(), Some("EURUSD-1"));
            assert_eq!(p.status, PositionStatus::Open);
            assert_eq!(d.order_id, o.id);
            assert_eq!(d.position_id, p.id);
            assert_eq!(d.commission, -4); // half of 0.07, rounded
            (p.id, d.execution_price)
        }
        other => panic!("{other:?}"),
    };
    // ask (1.08500 + 7 points) + 2 points of slippage
    assert_eq!(fill, 1.08509);
    h.step(1); // bar 5 opens at 1.08700
    let evs = h.req(
        c,
        Request::ClosePosition {
            account_id: ACC,
            position_id: pos_id,
            volume: 100_000,
        },
    );
    let detail = match evs.last() {
        Some(Event::Execution {
            exec_type: ExecType::Filled,
            deal: Some(d),
            position: Some(p),
            ..
        }) => {
            assert_eq!(p.status, PositionStatus::Closed);
            assert_eq!(d.execution_price, 1.08698); // bid − 2 points
            d.close.clone().unwrap()
        }
        other => panic!("{other:?}"),
    };
    // (1.08698 − 1.08509) = 189 points × $1 × 0.01 lot = $1.89, minus $0.07 → $1.82
    assert_eq!(detail.gross_profit, 189);
    assert_eq!(detail.commission, -7);
    assert_eq!(detail.balance, 10_000_000 + 182);
    let v = h.b.account_view(ACC).unwrap();
    assert_eq!((v.balance, v.open_positions, v.deals), (10_000_182, 0, 2));
    match h.one(
        c,
        Request::DealList {
            account_id: ACC,
            from_ms: None,
            to_ms: None,
            max_rows: Some(1),
        },
    ) {
        Event::DealList {
            deals, has_more, ..
        } => {
            assert_eq!(deals.len(), 1);
            assert!(has_more);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sell_fills_at_bid_and_unrealized_pnl() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    h.step(4);
    let evs = h.req(c, market_order(Side::Sell, 200_000));
    let Some(Event::Execution { deal: Some(d), .. }) = evs.last() else {
        panic!("{evs:?}")
    };
    assert_eq!(d.execution_price, 1.08498); // bid − 2 points slippage
    h.step(1); // ask 1.08707
    match h.one(c, Request::UnrealizedPnl { account_id: ACC }) {
        Event::UnrealizedPnl {
            items,
            money_digits,
            ..
        } => {
            assert_eq!(money_digits, 2);
            // (1.08498 − 1.08707) = −209 points × $1 × 0.02 = −$4.18; net adds −$0.07 commission
            assert_eq!(items[0].1, -418);
            assert_eq!(items[0].2, -418 - 7);
        }
        other => panic!("{other:?}"),
    }
    match h.one(c, Request::Reconcile { account_id: ACC }) {
        Event::Reconcile {
            positions, orders, ..
        } => {
            assert_eq!(positions.len(), 1);
            assert_eq!(positions[0].trade.side, Side::Sell);
            assert!(orders.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trading_errors() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    // before any tick of the replay there is a price (the last history close), so the market is open
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 150_000))),
        ErrorCode::TradingBadVolume
    );
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 50_000))),
        ErrorCode::TradingBadVolume
    );
    // 1,000 lots at 1:100 need ~$1.08M of margin; the account has $100k
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 10_000_000_000))),
        ErrorCode::NotEnoughMoney
    );
    assert_eq!(
        code_of(&h.one(
            c,
            Request::ClosePosition {
                account_id: ACC,
                position_id: 42,
                volume: 100_000
            }
        )),
        ErrorCode::PositionNotFound
    );
    let mut o = market_order(Side::Buy, 100_000);
    if let Request::NewOrder(n) = &mut o {
        n.stop_loss = Some(1.0);
    }
    assert_eq!(code_of(&h.one(c, o)), ErrorCode::TradingBadStops);
    // run the data out: MARKET_CLOSED
    while h.b.step_market(h.now) {}
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 100_000))),
        ErrorCode::MarketClosed
    );
}

#[test]
fn a_symbol_with_no_data_left_is_listed_as_not_tradable() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    let tradable = |h: &mut H| match h.one(
        c,
        Request::SymbolById {
            account_id: ACC,
            symbol_ids: vec![1],
        },
    ) {
        Event::SymbolById { symbols, .. } => symbols[0].tradable,
        other => panic!("{other:?}"),
    };
    assert!(tradable(&mut h), "a price and data left: tradable");
    h.step(1);
    assert!(tradable(&mut h), "still data left");
    // run the data out: the symbol is listed as closed, as its orders are refused
    while h.b.step_market(h.now) {}
    assert!(!tradable(&mut h), "no data left: not tradable");
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 100_000))),
        ErrorCode::MarketClosed
    );
}

#[test]
fn market_range_honours_slippage_bound() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    h.step(4);
    let range = |points: i32| {
        let mut o = market_order(Side::Buy, 100_000);
        if let Request::NewOrder(n) = &mut o {
            n.order_type = OrderType::MarketRange;
            n.base_slippage_price = Some(1.08507); // the ask; the fill is 2 points worse
            n.slippage_in_points = Some(points);
        }
        o
    };
    let evs = h.req(c, range(1));
    assert!(
        matches!(
            evs.last(),
            Some(Event::Execution {
                exec_type: ExecType::Cancelled,
                deal: None,
                ..
            })
        ),
        "{evs:?}"
    );
    let evs = h.req(c, range(2));
    assert!(
        matches!(
            evs.last(),
            Some(Event::Execution {
                exec_type: ExecType::Filled,
                ..
            })
        ),
        "{evs:?}"
    );
}

#[test]
fn view_scope_cannot_trade() {
    let mut cfg = BrokerConfig::default();
    cfg.tokens[0].scope = Scope::View;
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 100_000))),
        ErrorCode::TradingNotAllowed
    );
}

#[test]
fn spots_carry_changed_prices_and_the_forming_bar() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    assert_eq!(
        code_of(&h.one(
            c,
            Request::SubscribeLiveTrendbar {
                account_id: ACC,
                symbol_id: 1,
                period: Period::M15.number()
            }
        )),
        ErrorCode::NotSubscribedToSpots
    );
    let evs = h.req(
        c,
        Request::SubscribeSpots {
            account_id: ACC,
            symbol_ids: vec![1],
            with_timestamp: true,
        },
    );
    assert_eq!(evs[0], Event::SubscribeSpotsRes { account_id: ACC });
    // the first spot has the latest prices: bar 3's close
    assert!(
        matches!(
            &evs[1],
            Event::Spot {
                bid: Some(108_470),
                ask: Some(108_477),
                ..
            }
        ),
        "{evs:?}"
    );
    assert_eq!(
        code_of(&h.one(
            c,
            Request::SubscribeSpots {
                account_id: ACC,
                symbol_ids: vec![1],
                with_timestamp: false
            }
        )),
        ErrorCode::AlreadySubscribed
    );
    h.one(
        c,
        Request::SubscribeLiveTrendbar {
            account_id: ACC,
            symbol_id: 1,
            period: Period::M15.number(),
        },
    );
    h.one(
        c,
        Request::SubscribeLiveTrendbar {
            account_id: ACC,
            symbol_id: 1,
            period: Period::H1.number(),
        },
    );
    // no tick yet moves the market, and a repeated price is omitted
    h.step(1); // bar 4 opens at 1.08470 (= last bid): no bid/ask in the event
    let evs: Vec<Event> = h.events(c).into_iter().map(|e| e.1).collect();
    match evs.as_slice() {
        [
            Event::Spot {
                bid: None,
                ask: None,
                trendbars,
                timestamp_ms: Some(ts),
                ..
            },
        ] => {
            assert_eq!(*ts, t0() + 4 * 900_000);
            assert_eq!(trendbars.len(), 2);
            let m15 = trendbars
                .iter()
                .find(|t| t.period == Period::M15)
                .unwrap()
                .decode();
            assert_eq!(
                (m15.time_ms, m15.open, m15.close),
                (t0() + 4 * 900_000, 108_470, 108_470)
            );
            let h1 = trendbars
                .iter()
                .find(|t| t.period == Period::H1)
                .unwrap()
                .decode();
            assert_eq!(h1.time_ms, t0() + 3_600_000);
        }
        other => panic!("{other:?}"),
    }
    h.step(3);
    let evs: Vec<Event> = h.events(c).into_iter().map(|e| e.1).collect();
    let Some(Event::Spot {
        bid: Some(108_500),
        trendbars,
        ..
    }) = evs.last()
    else {
        panic!("{evs:?}")
    };
    let m15 = trendbars
        .iter()
        .find(|t| t.period == Period::M15)
        .unwrap()
        .decode();
    assert_eq!(m15, contract_eurusd().bars[4]);
    // no tick so far moved a stream this connection had already seen into a new period
    assert!(
        evs.iter()
            .all(|e| matches!(e, Event::Spot { closed_bars, .. } if closed_bars.is_empty())),
        "{evs:?}"
    );
    // bar 5 opens: the event says (off the wire) which bar it closed, for the timing hook
    h.step(1);
    let evs: Vec<Event> = h.events(c).into_iter().map(|e| e.1).collect();
    match evs.as_slice() {
        [Event::Spot { closed_bars, .. }] => {
            assert_eq!(*closed_bars, vec![(Period::M15, t0() + 4 * 900_000)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn history_is_closed_bars_paged_from_the_end() {
    let data = synthetic("EURUSD", Period::M15, 400, t0(), 3);
    let all = data.bars.clone();
    let mut cfg = BrokerConfig::default();
    cfg.max_bars_per_response = 100;
    let mut h = H::new(cfg, vec![data], Start::AfterBars(300));
    let c = h.login();
    let get =
        |h: &mut H, period: Period, from: Option<i64>, to: Option<i64>, count: Option<u32>| match {
            h.now += 1000; // 5 historical requests per second
            h
        }
        .one(
            c,
            Request::GetTrendbars {
                account_id: ACC,
                symbol_id: 1,
                period: period.number(),
                from_ms: from,
                to_ms: to,
                count,
            },
        ) {
            Event::Trendbars {
                bars,
                has_more,
                timestamp_ms,
                ..
            } => (
                bars.iter().map(|t| t.decode()).collect::<Vec<_>>(),
                has_more,
                timestamp_ms,
            ),
            other => panic!("{other:?}"),
        };
    let (bars, more, ts) = get(&mut h, Period::M15, Some(0), Some(2_147_483_646_000), None);
    assert!(more);
    assert_eq!(ts, all[300].time_ms);
    assert_eq!(bars, all[200..300].to_vec()); // the newest 100 closed bars
    let (older, more, _) = get(&mut h, Period::M15, Some(0), Some(bars[0].time_ms), None);
    assert!(more);
    assert_eq!(older, all[100..200].to_vec());
    let (five, _, _) = get(&mut h, Period::M15, None, None, Some(5));
    assert_eq!(five, all[295..300].to_vec());
    let (h1, _, _) = get(&mut h, Period::H1, None, None, Some(3));
    assert_eq!(
        h1,
        oracle_sim::bars::aggregate(&all[..300], Period::H1)[..]
            .iter()
            .rev()
            .take(3)
            .rev()
            .copied()
            .collect::<Vec<_>>()
    );
    h.now += 1000;
    assert_eq!(
        code_of(&h.one(
            c,
            Request::GetTrendbars {
                account_id: ACC,
                symbol_id: 1,
                period: Period::M1.number(),
                from_ms: None,
                to_ms: None,
                count: None
            }
        )),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(&h.one(
            c,
            Request::GetTrendbars {
                account_id: ACC,
                symbol_id: 1,
                period: 99,
                from_ms: None,
                to_ms: None,
                count: None
            }
        )),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(&h.one(
            c,
            Request::GetTrendbars {
                account_id: ACC,
                symbol_id: 1,
                period: 7,
                from_ms: Some(10),
                to_ms: Some(5),
                count: None
            }
        )),
        ErrorCode::IncorrectBoundaries
    );
}

#[test]
fn rate_limits_on_a_virtual_clock() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login(); // 2 requests
    let mut refused = 0;
    for _ in 0..60 {
        if matches!(
            h.one(c, Request::Version),
            Event::Error {
                code: ErrorCode::RequestFrequencyExceeded,
                ..
            }
        ) {
            refused += 1;
        }
    }
    assert_eq!(refused, 12); // 50 per second, the auth requests included
    h.now += 1000;
    assert!(matches!(
        h.one(c, Request::Version),
        Event::VersionRes { .. }
    ));
    let hist = Request::GetTrendbars {
        account_id: ACC,
        symbol_id: 1,
        period: 7,
        from_ms: None,
        to_ms: None,
        count: Some(1),
    };
    let codes: Vec<bool> = (0..7)
        .map(|_| matches!(h.one(c, hist.clone()), Event::Trendbars { .. }))
        .collect();
    assert_eq!(codes, vec![true, true, true, true, true, false, false]);
    h.now += 1000;
    assert!(matches!(h.one(c, hist), Event::Trendbars { .. }));
}

#[test]
fn heartbeats_and_idle_disconnect() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    assert_eq!(h.b.poll_timeout(), Some(h.now + 10_000));
    h.now += 10_000;
    h.b.handle_timeout(h.now);
    assert_eq!(
        h.events(c).into_iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![Event::Heartbeat]
    );
    h.now += 20_000; // 30 s since the client's last message
    h.b.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        matches!(
            &outs[0],
            Output::Send {
                event: Event::ClientDisconnect { .. },
                ..
            }
        ),
        "{outs:?}"
    );
    assert!(
        matches!(&outs[1], Output::Close { graceful: true, .. }),
        "{outs:?}"
    );
}

#[test]
fn no_heartbeat_fault() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![Fault::NoHeartbeat];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    h.now += 25_000;
    h.b.handle_timeout(h.now);
    assert!(h.events(c).is_empty());
}

#[test]
fn drop_after_and_silence_faults() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![Fault::DropAfter {
        after: 3,
        times: Some(1),
    }];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login(); // 2 frames
    h.b.handle_request(h.now, c, None, Request::Version);
    let outs = h.drain();
    assert!(
        matches!(
            outs.last(),
            Some(Output::Close {
                graceful: false,
                ..
            })
        ),
        "{outs:?}"
    );
    // times=1: the next connection is not dropped
    let c = h.login();
    for _ in 0..5 {
        assert!(matches!(
            h.one(c, Request::Version),
            Event::VersionRes { .. }
        ));
    }

    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![Fault::Silence {
        after: 2,
        times: None,
    }];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    assert!(h.req(c, Request::Version).is_empty());
    h.now += 15_000;
    h.b.handle_timeout(h.now);
    assert!(
        h.drain().is_empty(),
        "a silent connection gets no heartbeat either"
    );
}

#[test]
fn reject_faults_every_nth_and_per_symbol() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![
        Fault::Reject {
            code: ErrorCode::NotEnoughMoney,
            every: 2,
            symbol: Some("EURUSD".into()),
            times: None,
            via_error_res: false,
        },
        Fault::Reject {
            code: ErrorCode::MarketClosed,
            every: 1,
            symbol: Some("US500".into()),
            times: None,
            via_error_res: true,
        },
    ];
    let us500 = synthetic("US500", Period::M15, 10, t0(), 1);
    let mut h = H::new(cfg, vec![contract_eurusd(), us500], Start::AfterBars(4));
    let c = h.login();
    let r: Vec<bool> = (0..4)
        .map(|_| {
            matches!(
                h.req(c, market_order(Side::Buy, 100_000)).last(),
                Some(Event::Execution { .. })
            )
        })
        .collect();
    assert_eq!(r, vec![true, false, true, false]);
    let mut o = market_order(Side::Buy, 10);
    if let Request::NewOrder(n) = &mut o {
        n.symbol_id = 2;
    }
    match h.one(c, o) {
        Event::Error {
            code: ErrorCode::MarketClosed,
            account_id: Some(ACC),
            common: false,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn lose_exec_fault_executes_silently() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![Fault::LoseExec {
        every: 1,
        times: Some(1),
        filled_only: false,
    }];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    assert!(
        h.req(c, market_order(Side::Buy, 100_000)).is_empty(),
        "both events lost"
    );
    match h.one(c, Request::Reconcile { account_id: ACC }) {
        Event::Reconcile { positions, .. } => assert_eq!(positions.len(), 1),
        other => panic!("{other:?}"),
    }
    match h.one(
        c,
        Request::DealList {
            account_id: ACC,
            from_ms: None,
            to_ms: None,
            max_rows: None,
        },
    ) {
        Event::DealList {
            deals,
            has_more: false,
            ..
        } => assert_eq!(deals.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.req(c, market_order(Side::Buy, 100_000)).len(),
        2,
        "times=1: the next order is reported"
    );
}

#[test]
fn garbage_and_oversized_faults_and_bad_client_frames() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![
        Fault::Garbage {
            after: 1,
            times: None,
        },
        Fault::Oversized {
            after: 2,
            len: 20,
            times: None,
        },
    ];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.b.connect(h.now);
    h.b.handle_request(h.now, c, None, Request::Version);
    h.b.handle_request(h.now, c, None, Request::Version);
    let outs = h.drain();
    assert!(matches!(outs[1], Output::Garbage { .. }));
    assert!(matches!(outs[3], Output::Oversized { len: 20, .. }));

    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.b.connect(h.now);
    h.b.handle_bad_frame(
        h.now,
        c,
        BadFrame::TooLong {
            len: 1 << 30,
            max: 15_000_000,
        },
    );
    let outs = h.drain();
    assert!(
        matches!(
            &outs[0],
            Output::Send {
                event: Event::Error {
                    code: ErrorCode::FrameTooLong,
                    common: true,
                    ..
                },
                ..
            }
        ),
        "{outs:?}"
    );
    assert!(matches!(&outs[1], Output::Close { .. }));
}

#[test]
fn random_drop_is_deterministic_for_a_seed() {
    let run = |seed: u64| {
        let mut cfg = BrokerConfig::default();
        cfg.seed = seed;
        cfg.faults = vec![Fault::DropRandom {
            p: 0.1,
            times: None,
        }];
        let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
        let c = h.b.connect(h.now);
        let mut n = 0;
        loop {
            h.now += 100; // stay under the rate limit
            h.b.handle_request(h.now, c, None, Request::Version);
            n += 1;
            if h.drain().iter().any(|o| matches!(o, Output::Close { .. })) || n > 1000 {
                return n;
            }
        }
    };
    assert_eq!(run(7), run(7));
    assert!(run(7) < 1000);
    assert!(
        (1..20)
            .map(run)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "seeds differ"
    );
}

/// One scripted session: every output, in order, as text.
fn script(seed: u64) -> Vec<String> {
    let mut cfg = BrokerConfig::default();
    cfg.seed = seed;
    cfg.slippage_random_points = 5;
    cfg.accounts.push(AccountConfig {
        id: 1002,
        login: 7_001_002,
        balance_cents: 500_000,
        leverage: 30,
        is_live: false,
    });
    cfg.tokens[0].accounts.push(1002);
    cfg.speed = Speed::Times(60.0);
    let data = vec![
        synthetic("EURUSD", Period::M15, 300, t0(), seed),
        synthetic("US500", Period::M5, 900, t0(), seed),
    ];
    let mut h = H::new(cfg, data, Start::AfterBars(200));
    let c = h.login();
    h.b.handle_request(
        h.now,
        c,
        Some("s".into()),
        Request::SubscribeSpots {
            account_id: ACC,
            symbol_ids: vec![1, 2],
            with_timestamp: true,
        },
    );
    h.b.handle_request(
        h.now,
        c,
        Some("t".into()),
        Request::SubscribeLiveTrendbar {
            account_id: ACC,
            symbol_id: 2,
            period: Period::M15.number(),
        },
    );
    let mut log = Vec::new();
    for i in 0..200 {
        h.now += 997;
        h.b.handle_timeout(h.now);
        if i % 10 == 0 {
            h.b.handle_request(
                h.now,
                c,
                Some(format!("o{i}")),
                market_order(if i % 20 == 0 { Side::Buy } else { Side::Sell }, 100_000),
            );
        }
        if i % 7 == 0 {
            h.b.handle_request(h.now, c, None, Request::Heartbeat);
        }
        log.extend(h.drain().into_iter().map(|o| format!("{o:?}")));
    }
    log.push(format!("{:?}", h.b.account_view(ACC)));
    log
}

#[test]
fn same_seed_same_event_sequence() {
    let a = script(11);
    assert!(a.len() > 200, "{}", a.len());
    assert_eq!(a, script(11));
    assert_ne!(a, script(12));
}

#[test]
fn bar_pause_holds_fast_replay_after_a_subscribed_bar_closes() {
    let mut cfg = BrokerConfig::default();
    cfg.bar_pause_ms = 500;
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    h.req(
        c,
        Request::SubscribeSpots {
            account_id: ACC,
            symbol_ids: vec![1],
            with_timestamp: false,
        },
    );
    assert!(h.b.wants_step(h.now));
    // without a live-trendbar subscription there is no pause
    h.step(5);
    assert!(h.b.wants_step(h.now));
    h.drain();
    h.one(
        c,
        Request::SubscribeLiveTrendbar {
            account_id: ACC,
            symbol_id: 1,
            period: Period::M15.number(),
        },
    );
    h.step(3); // the rest of bar 5: no bar closes
    assert!(h.b.wants_step(h.now));
    h.step(1); // bar 6 opens: bar 5 closed
    assert!(!h.b.wants_step(h.now));
    assert_eq!(h.b.poll_timeout(), Some(h.now + 500));
    h.now += 500;
    h.b.handle_timeout(h.now);
    assert!(h.b.wants_step(h.now));
}

#[test]
fn lookups_expected_margin_order_details_list_and_deals_by_position() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    // Expected margin: buy at the ask, sell at the bid; the same model that fills use.
    let (buy_m, sell_m) = match h.one(
        c,
        Request::ExpectedMargin {
            account_id: ACC,
            symbol_id: 1,
            volumes: vec![100_000],
        },
    ) {
        Event::ExpectedMargin {
            margins,
            money_digits: 2,
            ..
        } => {
            assert_eq!(margins.len(), 1);
            assert_eq!(margins[0].0, 100_000);
            (margins[0].1, margins[0].2)
        }
        other => panic!("{other:?}"),
    };
    assert!(buy_m > 0 && buy_m >= sell_m, "{buy_m} {sell_m}");
    assert_eq!(
        code_of(&h.one(
            c,
            Request::ExpectedMargin {
                account_id: ACC,
                symbol_id: 99,
                volumes: vec![1]
            }
        )),
        ErrorCode::SymbolNotFound
    );
    assert_eq!(h.b.new_orders_with_client_id("EURUSD-1"), 0);
    assert_eq!(h.req(c, market_order(Side::Buy, 100_000)).len(), 2);
    assert_eq!(h.b.new_orders_with_client_id("EURUSD-1"), 1);
    let (order_id, position_id) = match h.one(
        c,
        Request::OrderList {
            account_id: ACC,
            from_ms: None,
            to_ms: None,
        },
    ) {
        Event::OrderList {
            orders,
            has_more: false,
            ..
        } => {
            assert_eq!(orders.len(), 1);
            assert_eq!(orders[0].client_order_id.as_deref(), Some("EURUSD-1"));
            assert_eq!(orders[0].status, OrderStatus::Filled);
            (orders[0].id, orders[0].position_id)
        }
        other => panic!("{other:?}"),
    };
    match h.one(
        c,
        Request::OrderDetails {
            account_id: ACC,
            order_id,
        },
    ) {
        Event::OrderDetails { order, deals, .. } => {
            assert_eq!(order.client_order_id.as_deref(), Some("EURUSD-1"));
            assert_eq!(deals.len(), 1);
            assert_eq!(deals[0].position_id, position_id);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code_of(&h.one(
            c,
            Request::OrderDetails {
                account_id: ACC,
                order_id: 4242
            }
        )),
        ErrorCode::InvalidRequest
    );
    // Closed outside (stop-out hook): the client gets the closing fill without its id.
    assert!(h.b.close_position_outside(h.now, ACC, position_id));
    assert!(!h.b.close_position_outside(h.now, ACC, position_id));
    let evs = h.events(c);
    assert!(
        evs.iter().any(|(cmid, e)| cmid.is_none()
            && matches!(e, Event::Execution { exec_type: ExecType::Filled, order: Some(o), .. } if o.closing_order)),
        "{evs:?}"
    );
    assert!(h.b.position_ids(ACC).is_empty());
    match h.one(
        c,
        Request::DealListByPositionId {
            account_id: ACC,
            position_id,
            from_ms: None,
            to_ms: None,
        },
    ) {
        Event::DealListByPositionId {
            deals,
            has_more: false,
            ..
        } => {
            assert_eq!(deals.len(), 2, "open and close");
            assert!(deals[1].close.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Balance hook: equity follows.
    assert!(h.b.set_balance(ACC, 5_000_000));
    let v = h.b.account_view(ACC).unwrap();
    assert_eq!((v.balance, v.equity), (5_000_000, 5_000_000));
    assert!(!h.b.set_balance(7, 1));
    assert_eq!(
        h.one(c, Request::AccountLogout { account_id: ACC }),
        Event::AccountLogoutRes { account_id: ACC }
    );
}

#[test]
fn spread_fault_and_hook_widen_the_quotes() {
    let mut cfg = BrokerConfig::default();
    cfg.faults = vec![Fault::Spread {
        symbol: "EURUSD".into(),
        points: 60,
        after: 2,
    }];
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    let first_spread = |h: &mut H| -> Option<i64> {
        let _ = h.req(
            c,
            Request::UnsubscribeSpots {
                account_id: ACC,
                symbol_ids: vec![1],
            },
        );
        let evs = h.req(
            c,
            Request::SubscribeSpots {
                account_id: ACC,
                symbol_ids: vec![1],
                with_timestamp: false,
            },
        );
        evs.iter().find_map(|e| match e {
            Event::Spot {
                bid: Some(b),
                ask: Some(a),
                ..
            } => Some(*a as i64 - *b as i64),
            _ => None,
        })
    };
    assert_eq!(
        first_spread(&mut h),
        Some(7),
        "the symbol's own spread first"
    );
    h.step(2);
    assert_eq!(first_spread(&mut h), Some(7), "not before 2 ticks");
    h.step(1);
    assert_eq!(first_spread(&mut h), Some(60), "the fault fired");
    assert!(h.b.set_spread_points("EURUSD", 9));
    assert_eq!(first_spread(&mut h), Some(9), "the hook");
    assert!(!h.b.set_spread_points("NOPE", 9));
}

#[test]
fn trading_mode_is_announced_served_and_enforced_close_only_lets_closes_through() {
    let mut h = H::new(
        BrokerConfig::default(),
        vec![contract_eurusd()],
        Start::AfterBars(4),
    );
    let c = h.login();
    let filled = |evs: &[Event]| {
        evs.iter().find_map(|e| match e {
            Event::Execution {
                exec_type: ExecType::Filled,
                position: Some(p),
                ..
            } => Some(p.id),
            _ => None,
        })
    };
    let pos = filled(&h.req(c, market_order(Side::Buy, 100_000))).expect("a fill");
    let mode = |h: &mut H| match h.one(
        c,
        Request::SymbolById {
            account_id: ACC,
            symbol_ids: vec![1],
        },
    ) {
        Event::SymbolById { symbols, .. } => symbols[0].trading_mode,
        other => panic!("{other:?}"),
    };
    assert_eq!(mode(&mut h), None, "by its data: ENABLED");
    assert!(!h.b.set_trading_mode(h.now, "GBPUSD", 3), "unknown symbol");
    assert!(h.b.set_trading_mode(h.now, "EURUSD", 3));
    assert_eq!(
        h.events(c).into_iter().map(|e| e.1).collect::<Vec<_>>(),
        [Event::SymbolChanged {
            account_id: ACC,
            symbol_ids: vec![1]
        }]
    );
    assert_eq!(mode(&mut h), Some(3));
    // Close-only: no new order, the close goes through.
    assert_eq!(
        code_of(&h.one(c, market_order(Side::Buy, 100_000))),
        ErrorCode::TradingDisabled
    );
    let close = Request::ClosePosition {
        account_id: ACC,
        position_id: pos,
        volume: 100_000,
    };
    assert!(filled(&h.req(c, close.clone())).is_some(), "closed");
    // Disabled: closes refused too.
    let pos = {
        h.b.set_trading_mode(h.now, "EURUSD", 0);
        h.drain();
        filled(&h.req(c, market_order(Side::Sell, 100_000))).expect("a fill")
    };
    h.b.set_trading_mode(h.now, "EURUSD", 1);
    h.drain();
    assert_eq!(
        code_of(&h.one(
            c,
            Request::ClosePosition {
                account_id: ACC,
                position_id: pos,
                volume: 100_000,
            }
        )),
        ErrorCode::TradingDisabled
    );
}

#[test]
fn broker_names_list_a_symbol_under_the_brokers_name() {
    let mut cfg = BrokerConfig::default();
    cfg.broker_names.insert("EURUSD".into(), "EURUSD.x".into());
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    match h.one(c, Request::SymbolsList { account_id: ACC }) {
        Event::SymbolsList { symbols, .. } => {
            let names: Vec<_> = symbols.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["EURUSD.x"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(h.b.rename_symbol(h.now, "EURUSD.x", "EURUSD.y"));
    h.drain();
    match h.one(c, Request::SymbolsList { account_id: ACC }) {
        Event::SymbolsList { symbols, .. } => assert_eq!(symbols[0].name, "EURUSD.y"),
        other => panic!("{other:?}"),
    }
}

/// `ClosePosition` of all `volume` of `pos_id`: the closing deal's detail.
fn close_detail(h: &mut H, c: ConnId, pos_id: i64, volume: i64) -> CloseDetail {
    let evs = h.req(
        c,
        Request::ClosePosition {
            account_id: ACC,
            position_id: pos_id,
            volume,
        },
    );
    match evs.last() {
        Some(Event::Execution {
            exec_type: ExecType::Filled,
            deal: Some(d),
            ..
        }) => d.close.clone().expect("a closing deal"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_eur_deposit_account_is_named_eur_and_its_money_is_converted_at_the_starts_eurusd_price() {
    let mut cfg = BrokerConfig::default();
    cfg.deposit_currency = "EUR".into();
    let mut h = H::new(cfg, vec![contract_eurusd()], Start::AfterBars(4));
    let c = h.login();
    let dep = match h.one(c, Request::Trader { account_id: ACC }) {
        Event::Trader { trader, .. } => trader.deposit_asset_id,
        other => panic!("{other:?}"),
    };
    let named = match h.one(c, Request::AssetList { account_id: ACC }) {
        Event::AssetList { assets, .. } => assets.into_iter().find(|a| a.id == dep).map(|a| a.name),
        other => panic!("{other:?}"),
    };
    assert_eq!(named.as_deref(), Some("EUR"));
    // The contract's trade (+189 points on 0.01 lot: $1.89 gross, $0.07 commission), in EUR at
    // the start's EURUSD bid (bar 3's close, 1.08470).
    h.step(4);
    let pos_id = match h.req(c, market_order(Side::Buy, 100_000)).as_slice() {
        [
            _,
            Event::Execution {
                position: Some(p), ..
            },
        ] => p.id,
        other => panic!("{other:?}"),
    };
    h.step(1);
    let d = close_detail(&mut h, c, pos_id, 100_000);
    let eur = |usd_cents: f64| (usd_cents / 1.08470).round() as i64;
    assert_eq!(d.gross_profit, eur(189.0));
    assert_eq!(d.commission, -eur(7.0));
    assert!(
        (d.quote_to_deposit - 1.0 / 1.08470).abs() < 1e-12,
        "{}",
        d.quote_to_deposit
    );
}

#[test]
fn a_deposit_currency_no_symbol_pairs_with_usd_is_refused_naming_the_option() {
    let mut cfg = BrokerConfig::default();
    cfg.deposit_currency = "JPY".into();
    let Err(err) = Broker::new(
        cfg,
        Market::new(vec![contract_eurusd()], Start::AfterBars(4)),
        0,
    ) else {
        panic!("started with no USDJPY to convert at")
    };
    let text = err.to_string();
    assert!(text.contains("--deposit-currency JPY"), "{text}");
    let bad = oracle_sim::config::parse_deposit_currency("eur").expect_err("lower case");
    assert!(bad.contains("--deposit-currency \"eur\""), "{bad}");
}
