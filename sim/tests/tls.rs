//! End-to-end tests over real TLS sockets on loopback, with a client built only on
//! `oracle-ctrader`'s generated messages and frame codec.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oracle_ctrader::proto::{self as pb, Payload};
use oracle_sim::bars::{Bar, Period, PeriodExt, aggregate};
use oracle_sim::config::{DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, Fault};
use oracle_sim::msg::ErrorCode;
use support::*;

const MT: tokio::runtime::RuntimeFlavor = tokio::runtime::RuntimeFlavor::MultiThread;

fn start_ms() -> i64 {
    // AfterBars(300): EURUSD's bar 300 (M15) is the latest 300th bar of the three files
    three_symbols()[0].bars[300].time_ms
}

fn closed(bars: &[Bar], period: Period, now: i64) -> Vec<Bar> {
    aggregate(bars, period)
        .into_iter()
        .filter(|b| period.bucket_end(b.time_ms) <= now)
        .collect()
}

fn last<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    v[v.len() - n..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_auth_flow() {
    assert_eq!(tokio::runtime::Handle::current().runtime_flavor(), MT);
    let sim = start(config()).await;
    let mut c = Client::connect(&sim).await;
    let r = c.request(pb::ProtoOaVersionReq::default()).await;
    assert!(matches!(r, Payload::VersionRes(_)), "{r:?}");
    // before application auth
    let r = c
        .request(pb::ProtoOaTraderReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&r), "CH_CLIENT_NOT_AUTHENTICATED");
    c.app_auth().await;
    let r = c
        .request(pb::ProtoOaGetAccountListByAccessTokenReq {
            access_token: DEFAULT_ACCESS_TOKEN.into(),
            ..Default::default()
        })
        .await;
    let Payload::GetAccountListByAccessTokenRes(list) = r else {
        panic!("{r:?}")
    };
    assert_eq!(list.permission_scope, Some(1)); // SCOPE_TRADE
    assert_eq!(list.ctid_trader_account.len(), 1);
    assert_eq!(
        list.ctid_trader_account[0].ctid_trader_account_id,
        ACC as u64
    );
    assert_eq!(list.ctid_trader_account[0].is_live, Some(false));
    let auth = pb::ProtoOaAccountAuthReq {
        ctid_trader_account_id: ACC,
        access_token: DEFAULT_ACCESS_TOKEN.into(),
        ..Default::default()
    };
    let r = c.request(auth.clone()).await;
    let Payload::AccountAuthRes(a) = r else {
        panic!("{r:?}")
    };
    assert_eq!(a.ctid_trader_account_id, ACC);
    let r = c.request(auth).await;
    assert_eq!(error_code(&r), "ALREADY_LOGGED_IN");
    let r = c
        .request(pb::ProtoOaTraderReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::TraderRes(t) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (
            t.trader.balance,
            t.trader.money_digits,
            t.trader.leverage_in_cents
        ),
        (10_000_000, Some(2), Some(10_000))
    );
    let r = c
        .request(pb::ProtoOaSymbolsListReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::SymbolsListRes(l) = r else {
        panic!("{r:?}")
    };
    let mut names: Vec<_> = l
        .symbol
        .iter()
        .map(|s| (s.symbol_id, s.symbol_name.clone().unwrap()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            (1, "EURUSD".into()),
            (2, "US500".into()),
            (3, "AAPL".into())
        ]
    );
    let r = c
        .request(pb::ProtoOaSymbolByIdReq {
            ctid_trader_account_id: ACC,
            symbol_id: vec![1, 2, 3],
            ..Default::default()
        })
        .await;
    let Payload::SymbolByIdRes(s) = r else {
        panic!("{r:?}")
    };
    let specs: Vec<_> = s
        .symbol
        .iter()
        .map(|s| (s.digits, s.lot_size, s.min_volume, s.step_volume))
        .collect();
    assert_eq!(
        specs,
        vec![
            (5, Some(10_000_000), Some(100_000), Some(100_000)),
            (2, Some(100), Some(10), Some(10)),
            (2, Some(100), Some(100), Some(100))
        ]
    );

    // a wrong secret: CH_CLIENT_AUTH_FAILURE, then the server closes the connection
    let mut bad = Client::connect(&sim).await;
    let r = bad
        .request(pb::ProtoOaApplicationAuthReq {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: "nope".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::OaErrorRes(_)));
    assert_eq!(error_code(&r), "CH_CLIENT_AUTH_FAILURE");
    assert!(
        matches!(bad.recv_raw(WAIT).await, Recv::Eof),
        "closed after the error"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_for_several_symbols_and_periods_is_exact() {
    let sim = start(config()).await;
    let data = three_symbols();
    let now = start_ms();
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let get = |symbol_id: i64, period: Period, from: i64, to: i64, count: Option<u32>| {
        pb::ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: ACC,
            from_timestamp: Some(from),
            to_timestamp: Some(to),
            period: period.number(),
            symbol_id,
            count,
            ..Default::default()
        }
    };
    #[allow(deprecated)]
    let check = |r: Payload, want: &[Bar], more: bool| {
        let Payload::GetTrendbarsRes(res) = r else {
            panic!("{r:?}")
        };
        assert_eq!(res.timestamp, Some(now), "timestamp always sent");
        assert_eq!(res.has_more, Some(more));
        let got: Vec<Bar> = res.trendbar.iter().map(decode).collect();
        assert_eq!(got, want);
    };
    let far = 2_147_483_646_000;
    check(
        c.request(get(1, Period::M15, 0, far, Some(50))).await,
        &data[0].bars[250..300],
        true,
    );
    let us_h1 = closed(&data[1].bars, Period::H1, now);
    check(
        c.request(get(2, Period::H1, 0, far, Some(10))).await,
        &last(&us_h1, 10),
        true,
    );
    let us_m5 = closed(&data[1].bars, Period::M5, now);
    check(
        c.request(get(2, Period::M5, 0, far, Some(7))).await,
        &last(&us_m5, 7),
        true,
    );
    let aapl_h4: Vec<Bar> = closed(&data[2].bars, Period::H4, now)
        .into_iter()
        .filter(|b| b.time_ms >= now - 86_400_000)
        .collect();
    check(
        c.request(get(3, Period::H4, now - 86_400_000, now, None))
            .await,
        &aapl_h4,
        false,
    );
    let eur_d1 = closed(&data[0].bars, Period::D1, now);
    tokio::time::sleep(Duration::from_millis(1100)).await; // 5 historical requests per second
    check(
        c.request(get(1, Period::D1, 0, far, None)).await,
        &eur_d1,
        false,
    );
    let r = c.request(get(1, Period::M1, 0, far, None)).await;
    assert_eq!(
        error_code(&r),
        "INVALID_REQUEST",
        "no M1 data for an M15 file"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_bars_close_in_the_stream_and_match_history() {
    let sim = start(config()).await;
    let data = three_symbols();
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let r = c
        .request(pb::ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: ACC,
            period: Period::M15.number(),
            symbol_id: 1,
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&r), "NOT_SUBSCRIBED_TO_SPOTS");
    let r = c
        .request(pb::ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACC,
            symbol_id: vec![1, 2],
            subscribe_to_spot_timestamp: Some(true),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::SubscribeSpotsRes(_)), "{r:?}");
    // the first spot of each symbol carries both prices; ask = bid + spread
    for (sym, spread) in [(1, 7), (2, 50 * 1000)] {
        let e = c
            .wait_for(|e| matches!(&e.payload, Payload::SpotEvent(s) if s.symbol_id == sym))
            .await;
        let Payload::SpotEvent(s) = e.payload else {
            unreachable!()
        };
        assert_eq!(s.ask.unwrap() - s.bid.unwrap(), spread);
    }
    for (sym, p) in [(1, Period::M15), (2, Period::M5), (2, Period::H1)] {
        let r = c
            .request(pb::ProtoOaSubscribeLiveTrendbarReq {
                ctid_trader_account_id: ACC,
                period: p.number(),
                symbol_id: sym,
                ..Default::default()
            })
            .await;
        assert!(matches!(r, Payload::SubscribeLiveTrendbarRes(_)), "{r:?}");
    }
    let expected: BTreeMap<(i64, Period), Vec<Bar>> = [
        ((1, Period::M15), data[0].bars.clone()),
        ((2, Period::M5), data[1].bars.clone()),
        ((2, Period::H1), aggregate(&data[1].bars, Period::H1)),
    ]
    .into_iter()
    .collect();
    let mut forming: BTreeMap<(i64, Period), Bar> = BTreeMap::new();
    let mut closed_seen: BTreeMap<(i64, Period), Vec<Bar>> = BTreeMap::new();
    let mut last_bid: BTreeMap<i64, u64> = BTreeMap::new();
    while closed_seen.values().filter(|v| v.len() >= 3).count() < 3 {
        let e = c.next().await;
        let Payload::SpotEvent(s) = e.payload else {
            continue;
        };
        assert!(e.client_msg_id.is_none());
        assert!(s.timestamp.is_some());
        if let Some(b) = s.bid {
            last_bid.insert(s.symbol_id, b);
        }
        for tb in &s.trendbar {
            let p = Period::from_number(tb.period.unwrap()).unwrap();
            let bar = decode(tb);
            let key = (s.symbol_id, p);
            if let Some(bid) = last_bid.get(&s.symbol_id) {
                assert_eq!(bar.close as u64, *bid, "the forming bar closes at the bid");
            }
            if let Some(prev) = forming.insert(key, bar) {
                if prev.time_ms != bar.time_ms {
                    // the stream moved into a new period: `prev` is closed
                    let want = expected[&key]
                        .iter()
                        .find(|b| b.time_ms == prev.time_ms)
                        .unwrap();
                    assert_eq!(&prev, want, "{key:?}");
                    closed_seen.entry(key).or_default().push(prev);
                }
            }
        }
    }
    // the closed bars are in history, identical
    let eur = &closed_seen[&(1, Period::M15)];
    let r = c
        .request(pb::ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: ACC,
            from_timestamp: Some(eur[0].time_ms),
            to_timestamp: Some(eur[eur.len() - 1].time_ms + 1),
            period: Period::M15.number(),
            symbol_id: 1,
            ..Default::default()
        })
        .await;
    let Payload::GetTrendbarsRes(h) = r else {
        panic!("{r:?}")
    };
    assert_eq!(h.trendbar.iter().map(decode).collect::<Vec<_>>(), *eur);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_fill_at_ask_and_bid_and_close() {
    let sim = start(config()).await;
    let data = three_symbols();
    let mut c = Client::connect(&sim).await;
    c.login().await;
    // no spot subscription: in fast mode the market waits, the price is the last history close
    let eur_bid = data[0].bars[299].close;
    let us_bid = data[1]
        .bars
        .iter()
        .rfind(|b| b.time_ms < start_ms())
        .unwrap()
        .close;
    let cmid = c.send(market_order(1, 1, 100_000)).await;
    let acc = c.next().await;
    assert_eq!(acc.client_msg_id.as_deref(), Some(cmid.as_str()));
    let Payload::ExecutionEvent(a) = acc.payload else {
        panic!()
    };
    assert_eq!(a.execution_type, 2); // ORDER_ACCEPTED
    let fill = c.next().await;
    assert_eq!(fill.client_msg_id.as_deref(), Some(cmid.as_str()));
    let Payload::ExecutionEvent(f) = fill.payload else {
        panic!()
    };
    assert_eq!(f.execution_type, 3); // ORDER_FILLED
    let deal = f.deal.unwrap();
    let order = f.order.unwrap();
    let pos = f.position.unwrap();
    assert_eq!(
        deal.execution_price,
        Some(oracle_sim::bars::price_to_f64(eur_bid + 7, 5)),
        "buy at ask"
    );
    assert_eq!(order.client_order_id.as_deref(), Some("t-1-1-100000"));
    assert_eq!(
        (deal.order_id, deal.position_id),
        (order.order_id, pos.position_id)
    );
    assert_eq!(pos.position_status, 1);

    let r = c.request(market_order(2, 2, 30)).await; // sell 0.30 lot US500
    let Payload::ExecutionEvent(_) = r else {
        panic!("{r:?}")
    };
    let f = c
        .wait_for(|e| matches!(&e.payload, Payload::ExecutionEvent(x) if x.execution_type == 3))
        .await;
    let Payload::ExecutionEvent(f) = f.payload else {
        unreachable!()
    };
    assert_eq!(
        f.deal.unwrap().execution_price,
        Some(oracle_sim::bars::price_to_f64(us_bid, 2)),
        "sell at bid"
    );

    let r = c
        .request(pb::ProtoOaReconcileReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(rec) = r else {
        panic!("{r:?}")
    };
    assert_eq!(rec.position.len(), 2);

    let r = c
        .request(pb::ProtoOaClosePositionReq {
            ctid_trader_account_id: ACC,
            position_id: pos.position_id,
            volume: 100_000,
            ..Default::default()
        })
        .await;
    let Payload::ExecutionEvent(_) = r else {
        panic!("{r:?}")
    };
    let f = c
        .wait_for(|e| matches!(&e.payload, Payload::ExecutionEvent(x) if x.execution_type == 3))
        .await;
    let Payload::ExecutionEvent(f) = f.payload else {
        unreachable!()
    };
    let d = f.deal.unwrap();
    assert_eq!(
        d.execution_price,
        Some(oracle_sim::bars::price_to_f64(eur_bid, 5)),
        "a buy closes at bid"
    );
    let detail = d.close_position_detail.unwrap();
    // −7 points × $1 × 0.01 lot = −$0.07 gross; −$0.07 commission (built-in EURUSD: $7/lot)
    assert_eq!(
        (detail.gross_profit, detail.commission, detail.balance),
        (-7, -7, 10_000_000 - 14)
    );
    assert_eq!(f.position.unwrap().position_status, 2);

    let r = c
        .request(pb::ProtoOaDealListReq {
            ctid_trader_account_id: ACC,
            from_timestamp: Some(0),
            to_timestamp: Some(2_147_483_646_000),
            ..Default::default()
        })
        .await;
    let Payload::DealListRes(l) = r else {
        panic!("{r:?}")
    };
    assert_eq!((l.deal.len(), l.has_more), (3, false));
    let r = c
        .request(pb::ProtoOaGetPositionUnrealizedPnLReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::GetPositionUnrealizedPnLRes(u) = r else {
        panic!("{r:?}")
    };
    assert_eq!(u.position_unrealized_pn_l.len(), 1);
    // short 0.30 US500 entered at bid, marked at ask: −50 points × $0.01 × 0.3 = −$0.15
    assert_eq!(u.position_unrealized_pn_l[0].gross_unrealized_pn_l, -15);
    let r = c
        .request(pb::ProtoOaTraderReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::TraderRes(t) = r else {
        panic!("{r:?}")
    };
    assert_eq!(t.trader.balance, 10_000_000 - 14);
    let view = sim.account(ACC).await.unwrap();
    assert_eq!((view.balance, view.open_positions), (10_000_000 - 14, 1));

    // real trading errors
    let r = c.request(market_order(1, 1, 150_000)).await;
    assert_eq!(error_code(&r), "TRADING_BAD_VOLUME");
    let r = c.request(market_order(1, 1, 10_000_000_000)).await;
    assert!(matches!(r, Payload::OrderErrorEvent(_)));
    assert_eq!(error_code(&r), "NOT_ENOUGH_MONEY");
    sim.shutdown().await;
}

async fn with_faults(faults: Vec<Fault>) -> oracle_sim::SimHandle {
    let mut cfg = config();
    cfg.broker.faults = faults;
    start(cfg).await
}

fn is_closed(r: &Recv) -> bool {
    matches!(r, Recv::Eof | Recv::Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drop_after_n_messages_then_reconnect() {
    let sim = with_faults(vec![Fault::DropAfter {
        after: 4,
        times: Some(1),
    }])
    .await;
    let mut c = Client::connect(&sim).await;
    c.login().await; // 2 frames
    c.request(pb::ProtoOaVersionReq::default()).await; // 3
    c.send(pb::ProtoOaVersionReq::default()).await; // 4 → then dropped
    assert!(matches!(c.recv_raw(WAIT).await, Recv::Msg(_)));
    let r = c.recv_raw(WAIT).await;
    assert!(is_closed(&r), "{r:?}");
    let mut c = Client::connect(&sim).await;
    c.login().await;
    for _ in 0..5 {
        c.request(pb::ProtoOaVersionReq::default()).await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_random_drop_is_reproducible_with_a_seed() {
    async fn frames_until_drop(seed: u64) -> usize {
        let mut cfg = config();
        cfg.broker.seed = seed;
        cfg.broker.faults = vec![Fault::DropRandom {
            p: 0.15,
            times: None,
        }];
        let sim = start(cfg).await;
        let mut c = Client::connect(&sim).await;
        let mut n = 0;
        loop {
            if c.try_send(pb::ProtoOaVersionReq::default()).await.is_err() {
                sim.shutdown().await;
                return n;
            }
            match c.recv_raw(WAIT).await {
                Recv::Msg(_) => n += 1,
                other => {
                    assert!(is_closed(&other), "{other:?}");
                    sim.shutdown().await;
                    return n;
                }
            }
            // a dropped connection may still take a write; its read then fails
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let a = frames_until_drop(5).await;
    assert_eq!(a, frames_until_drop(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_reject_orders() {
    let sim = with_faults(vec![
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
            symbol: Some("AAPL".into()),
            times: None,
            via_error_res: false,
        },
        Fault::Reject {
            code: ErrorCode::TradingBadVolume,
            every: 1,
            symbol: Some("US500".into()),
            times: Some(1),
            via_error_res: true,
        },
    ])
    .await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let mut outcome = Vec::new();
    for _ in 0..4 {
        let r = c.request(market_order(1, 1, 100_000)).await;
        outcome.push(match r {
            Payload::ExecutionEvent(_) => "ok".to_string(),
            other => error_code(&other),
        });
        c.pending.clear();
    }
    assert_eq!(
        outcome,
        ["ok", "NOT_ENOUGH_MONEY", "ok", "NOT_ENOUGH_MONEY"]
    );
    let r = c.request(market_order(3, 1, 100)).await;
    assert!(matches!(r, Payload::OrderErrorEvent(_)));
    assert_eq!(error_code(&r), "MARKET_CLOSED");
    let r = c.request(market_order(2, 1, 10)).await;
    assert!(matches!(r, Payload::OaErrorRes(_)), "via=error");
    assert_eq!(error_code(&r), "TRADING_BAD_VOLUME");
    let r = c.request(market_order(2, 1, 10)).await;
    assert!(matches!(r, Payload::ExecutionEvent(_)), "times=1");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_closed_when_the_replay_is_over() {
    let mut cfg = config();
    cfg.live_bars = Some(2);
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    c.request(pb::ProtoOaSubscribeSpotsReq {
        ctid_trader_account_id: ACC,
        symbol_id: vec![1],
        ..Default::default()
    })
    .await;
    tokio::time::timeout(WAIT, sim.replay_done())
        .await
        .expect("replay ends");
    let r = c.request(market_order(1, 1, 100_000)).await;
    assert_eq!(error_code(&r), "MARKET_CLOSED");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_responses() {
    let sim = with_faults(vec![Fault::Delay { ms: 300 }]).await;
    let mut c = Client::connect(&sim).await;
    let t = Instant::now();
    c.request(pb::ProtoOaVersionReq::default()).await;
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_stop_heartbeats_and_idle_drop() {
    let mut cfg = config();
    cfg.broker.heartbeat_interval_ms = 200;
    cfg.broker.idle_timeout_ms = 1500;
    let sim = start(cfg.clone()).await;
    let mut c = Client::connect(&sim).await;
    let r = c.recv_raw(Duration::from_secs(2)).await;
    assert!(
        matches!(&r, Recv::Msg(e) if matches!(e.payload, Payload::HeartbeatEvent(_))),
        "{r:?}"
    );
    // silent client: ClientDisconnectEvent, then the connection is closed
    let e = c
        .wait_for(|e| matches!(e.payload, Payload::ClientDisconnectEvent(_)))
        .await;
    assert!(e.client_msg_id.is_none());
    assert!(is_closed(&c.recv_raw(WAIT).await));
    sim.shutdown().await;

    cfg.broker.faults = vec![Fault::NoHeartbeat];
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim).await;
    let r = c.recv_raw(Duration::from_millis(1000)).await;
    assert!(matches!(r, Recv::Timeout), "{r:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_silence_keeps_the_socket_open() {
    let mut cfg = config();
    cfg.broker.heartbeat_interval_ms = 200;
    cfg.broker.faults = vec![Fault::Silence {
        after: 2,
        times: None,
    }];
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    c.send(pb::ProtoOaVersionReq::default()).await;
    let r = c.recv_raw(Duration::from_millis(1000)).await;
    assert!(matches!(r, Recv::Timeout), "{r:?}");
    assert_eq!(sim.connections().await, 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_garbage_and_oversized_frames_reach_the_client() {
    let sim = with_faults(vec![Fault::Garbage {
        after: 1,
        times: Some(1),
    }])
    .await;
    let mut c = Client::connect(&sim).await;
    c.send(pb::ProtoOaVersionReq::default()).await;
    assert!(matches!(c.recv_raw(WAIT).await, Recv::Msg(_)));
    let r = c.recv_raw(WAIT).await;
    assert!(matches!(r, Recv::Garbage(_)), "{r:?}");
    sim.shutdown().await;

    let sim = with_faults(vec![Fault::Oversized {
        after: 1,
        len: 16 * 1024 * 1024 + 1,
        times: None,
    }])
    .await;
    let mut c = Client::connect(&sim).await;
    c.send(pb::ProtoOaVersionReq::default()).await;
    assert!(matches!(c.recv_raw(WAIT).await, Recv::Msg(_)));
    let r = c.recv_raw(WAIT).await;
    assert!(
        matches!(r, Recv::Frame(oracle_ctrader::FrameError::TooLong { .. })),
        "{r:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_lost_execution_event_is_found_by_reconcile() {
    let sim = with_faults(vec![Fault::LoseExec {
        every: 1,
        times: Some(1),
        filled_only: false,
    }])
    .await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    c.send(market_order(1, 1, 100_000)).await;
    let r = c.recv_raw(Duration::from_millis(800)).await;
    assert!(matches!(r, Recv::Timeout), "no execution event: {r:?}");
    let r = c
        .request(pb::ProtoOaReconcileReq {
            ctid_trader_account_id: ACC,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(rec) = r else {
        panic!("{r:?}")
    };
    assert_eq!(rec.position.len(), 1);
    let r = c
        .request(pb::ProtoOaDealListReq {
            ctid_trader_account_id: ACC,
            from_timestamp: Some(0),
            to_timestamp: Some(2_147_483_646_000),
            max_rows: Some(10),
            ..Default::default()
        })
        .await;
    let Payload::DealListRes(l) = r else {
        panic!("{r:?}")
    };
    assert_eq!(l.deal.len(), 1);
    assert_eq!(l.deal[0].position_id, rec.position[0].position_id);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delta_high_bug() {
    let sim = with_faults(vec![Fault::DeltaHighBug]).await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let r = c
        .request(pb::ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: ACC,
            period: Period::M15.number(),
            symbol_id: 1,
            from_timestamp: Some(0),
            to_timestamp: Some(2_147_483_646_000),
            ..Default::default()
        })
        .await;
    let Payload::GetTrendbarsRes(h) = r else {
        panic!("{r:?}")
    };
    let hit: Vec<_> = h
        .trendbar
        .iter()
        .filter(|t| t.delta_close == Some(0))
        .collect();
    assert!(!hit.is_empty());
    assert!(hit.iter().all(|t| t.delta_high == Some(0)));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_over_the_wire() {
    let sim = start(config()).await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    for _ in 0..60 {
        c.send(pb::ProtoOaVersionReq::default()).await;
    }
    let mut refused = 0;
    for _ in 0..60 {
        if let Payload::OaErrorRes(e) = c.next().await.payload {
            assert_eq!(e.error_code, "REQUEST_FREQUENCY_EXCEEDED");
            refused += 1;
        }
    }
    assert!(refused >= 1, "{refused}"); // exact counts: broker_core.rs, on a virtual clock
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hist = pb::ProtoOaGetTrendbarsReq {
        ctid_trader_account_id: ACC,
        period: 7,
        symbol_id: 1,
        count: Some(1),
        from_timestamp: Some(0),
        to_timestamp: Some(2_147_483_646_000),
        ..Default::default()
    };
    for _ in 0..7 {
        c.send(hist).await;
    }
    let mut refused = 0;
    for _ in 0..7 {
        match c.next().await.payload {
            Payload::OaErrorRes(e) if e.error_code == "REQUEST_FREQUENCY_EXCEEDED" => refused += 1,
            Payload::GetTrendbarsRes(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(refused >= 1, "{refused}");
    // the connection is still usable
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        c.request(pb::ProtoOaVersionReq::default()).await,
        Payload::VersionRes(_)
    ));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_frames_get_an_error_and_a_reset_and_the_server_lives() {
    let sim = start(config()).await;
    // an unknown payload type: UNSUPPORTED_MESSAGE, the connection stays
    let mut c = Client::connect(&sim).await;
    let unknown = pb::ProtoMessage {
        payload_type: 4242,
        payload: Some(vec![]),
        client_msg_id: Some("u".into()),
    };
    c.send_body(&prost::Message::encode_to_vec(&unknown)).await;
    let e = c.next().await;
    assert_eq!(e.client_msg_id.as_deref(), Some("u"));
    assert!(matches!(e.payload, Payload::ErrorRes(_)));
    assert_eq!(error_code(&e.payload), "UNSUPPORTED_MESSAGE");
    assert!(matches!(
        c.request(pb::ProtoOaVersionReq::default()).await,
        Payload::VersionRes(_)
    ));

    // garbage body
    c.send_body(&[0xff, 0xff, 0xff, 0x01, 0x02]).await;
    let e = c.next().await;
    assert_eq!(error_code(&e.payload), "INVALID_REQUEST");
    assert!(is_closed(&c.recv_raw(WAIT).await));

    // a length prefix over the maximum
    let mut c = Client::connect(&sim).await;
    c.send_raw(&(1u32 << 30).to_be_bytes()).await;
    let e = c.next().await;
    assert!(matches!(e.payload, Payload::ErrorRes(_)));
    assert_eq!(error_code(&e.payload), "FRAME_TOO_LONG");
    assert!(is_closed(&c.recv_raw(WAIT).await));

    // not even TLS
    let mut raw = tokio::net::TcpStream::connect(sim.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    drop(raw);

    // the server is alive and serves a new client
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let mut n = 0;
    while sim.connections().await != 1 {
        n += 1;
        assert!(n < 100, "old connections are gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_speed_and_start_file() {
    let dir = std::env::temp_dir().join(format!("oracle-sim-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let mut cfg = config();
    cfg.broker.speed = oracle_sim::Speed::BarsPerSecond(20.0); // 20 M15 bars per second
    cfg.live_bars = Some(4);
    cfg.start_file = Some(go.clone());
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim).await;
    c.login().await;
    c.request(pb::ProtoOaSubscribeSpotsReq {
        ctid_trader_account_id: ACC,
        symbol_id: vec![1],
        ..Default::default()
    })
    .await;
    let first = c
        .wait_for(|e| matches!(e.payload, Payload::SpotEvent(_)))
        .await;
    assert!(first.client_msg_id.is_none());
    // held: nothing moves
    let r = c.recv_raw(Duration::from_millis(400)).await;
    assert!(matches!(r, Recv::Timeout), "{r:?}");
    std::fs::write(&go, b"").unwrap();
    let t = Instant::now();
    tokio::time::timeout(WAIT, sim.replay_done())
        .await
        .expect("replay ends");
    // 4 bars at 20 bars/s ≈ 200 ms
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let mut spots = 0;
    while let Recv::Msg(e) = c.recv_raw(Duration::from_millis(200)).await {
        if matches!(e.payload, Payload::SpotEvent(_)) {
            spots += 1;
        }
    }
    // at most 4 ticks per bar + the next bar's open; ticks that change no price are not sent
    assert!((8..=4 * 4 + 1).contains(&spots), "{spots}");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
