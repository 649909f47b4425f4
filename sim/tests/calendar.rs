//! `--calendar realistic` on the broker core's virtual clock: the hours served in SymbolByIdRes,
//! MARKET_CLOSED (and no fill) for an order in closed hours, no spot and no history bar for
//! closed hours; and the default (open around the clock) unchanged.
#![allow(clippy::field_reassign_with_default)] // tests tweak one knob of the defaults

use oracle_ctrader::calendar::TradingCalendar;
use oracle_ctrader::proto::Payload;
use oracle_sim::bars::{Bar, Period, PeriodExt, parse_iso_utc};
use oracle_sim::broker::{Broker, Output};
use oracle_sim::calendar::{CalendarMode, SymbolHours};
use oracle_sim::config::{
    BrokerConfig, DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use oracle_sim::market::{Market, Start};
use oracle_sim::msg::*;
use oracle_sim::symbols::{SymbolData, SymbolSpec};
use oracle_sim::wire::payload_for;

const ACC: i64 = 1001;
const M15: i64 = 900_000;

fn t(s: &str) -> i64 {
    parse_iso_utc(s).unwrap()
}

/// EURUSD M15 bars from Friday 2024-03-08 18:00 UTC to Monday 18:00, through the weekend
/// (as the bundled bar files are).
fn eurusd_over_a_weekend() -> SymbolData {
    let t0 = t("2024-03-08T18:00:00Z");
    let bars = (0..288)
        .map(|i| Bar {
            time_ms: t0 + i * M15,
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
    c: ConnId,
}

impl H {
    fn new(mode: CalendarMode, start: &str) -> Self {
        let mut cfg = BrokerConfig::default();
        cfg.calendar = mode;
        let now = 1_700_000_000_000;
        let market = Market::new(vec![eurusd_over_a_weekend()], Start::At(t(start)));
        let mut h = H {
            b: Broker::new(cfg, market, now).unwrap(),
            now,
            c: 0,
        };
        h.c = h.b.connect(now);
        h.req(Request::ApplicationAuth {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
        });
        h.req(Request::AccountAuth {
            account_id: ACC,
            access_token: DEFAULT_ACCESS_TOKEN.into(),
        });
        h
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.b.poll_output())
            .filter_map(|o| match o {
                Output::Send { conn, event, .. } if conn == self.c => Some(event),
                _ => None,
            })
            .collect()
    }
    fn req(&mut self, r: Request) -> Vec<Event> {
        self.b.handle_request(self.now, self.c, Some("m".into()), r);
        self.events()
    }
    /// Steps the replay until market time reaches `until`; the spots sent on the way, with the
    /// market time each came at.
    fn step_until(&mut self, until: i64) -> Vec<i64> {
        let mut spots = Vec::new();
        while self.b.market().now_ms < until {
            assert!(self.b.step_market(self.now), "data left");
            let at = self.b.market().now_ms;
            spots.extend(
                self.events()
                    .iter()
                    .filter(|e| matches!(e, Event::Spot { .. }))
                    .map(|_| at),
            );
        }
        spots
    }
    fn buy(&mut self) -> Vec<Event> {
        self.req(Request::NewOrder(NewOrder {
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
            client_order_id: Some("EURUSD-1".into()),
        }))
    }
    fn positions(&self) -> usize {
        self.b.account_view(ACC).unwrap().open_positions
    }
}

fn fx_calendar() -> TradingCalendar {
    SymbolHours::for_symbol("EURUSD", CalendarMode::Realistic).calendar()
}

#[test]
fn an_order_on_saturday_gets_market_closed_and_no_fill_then_fills_after_sunday_22_utc() {
    let mut h = H::new(CalendarMode::Realistic, "2024-03-09T12:00:00Z");
    let evs = h.buy();
    assert!(
        matches!(&evs[..], [Event::OrderError { code: ErrorCode::MarketClosed, description, .. }]
            if description.contains("opens at 2024-03-10T22:00:00Z")),
        "{evs:?}"
    );
    assert_eq!(h.positions(), 0, "no fill");
    h.req(Request::SubscribeSpots {
        account_id: ACC,
        symbol_ids: vec![1],
        with_timestamp: true,
    });
    h.step_until(t("2024-03-10T22:30:00Z"));
    let evs = h.buy();
    assert!(
        evs.iter().any(|e| matches!(e, Event::Execution { .. })),
        "{evs:?}"
    );
    assert_eq!(h.positions(), 1);
}

#[test]
fn no_spot_is_sent_in_closed_hours() {
    let mut h = H::new(CalendarMode::Realistic, "2024-03-08T21:00:00Z");
    h.req(Request::SubscribeSpots {
        account_id: ACC,
        symbol_ids: vec![1],
        with_timestamp: true,
    });
    let spots = h.step_until(t("2024-03-11T00:00:00Z"));
    let cal = fx_calendar();
    assert!(
        spots.iter().any(|&s| s < t("2024-03-08T22:00:00Z")),
        "spots on Friday evening"
    );
    assert!(
        spots.iter().any(|&s| s >= t("2024-03-10T22:00:00Z")),
        "spots after Sunday's open"
    );
    let closed: Vec<&i64> = spots.iter().filter(|&&s| !cal.is_open(s)).collect();
    assert!(closed.is_empty(), "spots in closed hours at {closed:?}");
}

#[test]
fn history_has_no_bar_wholly_in_closed_hours() {
    let mut h = H::new(CalendarMode::Realistic, "2024-03-11T12:00:00Z");
    let evs = h.req(Request::GetTrendbars {
        account_id: ACC,
        symbol_id: 1,
        period: Period::M15.number(),
        from_ms: Some(t("2024-03-08T18:00:00Z")),
        to_ms: Some(t("2024-03-11T12:00:00Z")),
        count: None,
    });
    let [Event::Trendbars { bars, .. }] = &evs[..] else {
        panic!("{evs:?}")
    };
    let opens: Vec<i64> = bars
        .iter()
        .map(|b| i64::from(b.utc_minutes) * 60_000)
        .collect();
    // Friday 18:00–22:00 (16 bars) and Sunday 22:00 – Monday 12:00 (56 bars).
    assert_eq!(opens.len(), 16 + 56, "{opens:?}");
    assert_eq!(opens[15], t("2024-03-08T21:45:00Z"));
    assert_eq!(opens[16], t("2024-03-10T22:00:00Z"));
    let cal = fx_calendar();
    assert!(opens.iter().all(|&o| cal.is_open(o)));
}

#[test]
fn symbol_by_id_serves_the_realistic_hours_holiday_and_zone() {
    let mut h = H::new(CalendarMode::Realistic, "2024-03-11T12:00:00Z");
    let evs = h.req(Request::SymbolById {
        account_id: ACC,
        symbol_ids: vec![1],
    });
    let Payload::SymbolByIdRes(res) = payload_for(&evs[0]) else {
        panic!("{evs:?}")
    };
    let sym = &res.symbol[0];
    assert_eq!(sym.schedule_time_zone.as_deref(), Some("UTC"));
    assert_eq!(sym.schedule.len(), 1);
    assert_eq!(
        (sym.schedule[0].start_second, sym.schedule[0].end_second),
        (79_200, 511_200),
        "Sunday 22:00 – Friday 22:00"
    );
    assert_eq!(sym.holiday.len(), 1);
    assert!(sym.holiday[0].is_recurring);
    // The client's calendar from the wire agrees with the broker's.
    let cal = TradingCalendar::from_symbol(sym).unwrap();
    assert!(!cal.is_open(t("2024-12-25T12:00:00Z")), "Christmas");
    assert!(cal.is_open(t("2024-12-24T12:00:00Z")));
    assert!(!cal.is_open(t("2024-03-09T12:00:00Z")), "Saturday");
}

#[test]
fn the_default_calendar_stays_open_around_the_clock() {
    let mut h = H::new(CalendarMode::AlwaysOpen, "2024-03-09T12:00:00Z");
    let evs = h.buy();
    assert!(
        evs.iter().any(|e| matches!(e, Event::Execution { .. })),
        "{evs:?}"
    );
    let evs = h.req(Request::SymbolById {
        account_id: ACC,
        symbol_ids: vec![1],
    });
    let Payload::SymbolByIdRes(res) = payload_for(&evs[0]) else {
        panic!("{evs:?}")
    };
    let sym = &res.symbol[0];
    assert_eq!(sym.schedule_time_zone.as_deref(), Some("UTC"));
    assert_eq!(
        (sym.schedule[0].start_second, sym.schedule[0].end_second),
        (0, 604_800)
    );
    assert!(sym.holiday.is_empty());
}

#[test]
fn the_calendar_flag_defaults_to_always_open_and_a_bad_value_is_named() {
    use clap::Parser as _;
    let args = oracle_sim::cli::Args::try_parse_from(["oracle-sim"]).unwrap();
    assert_eq!(args.calendar, CalendarMode::AlwaysOpen);
    let args =
        oracle_sim::cli::Args::try_parse_from(["oracle-sim", "--calendar", "realistic"]).unwrap();
    assert_eq!(args.calendar, CalendarMode::Realistic);
    let e = oracle_sim::cli::Args::try_parse_from(["oracle-sim", "--calendar", "weekdays"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("weekdays") && e.contains("realistic"), "{e}");
}

#[test]
fn the_token_ttl_flag_sets_the_lifetime_of_refreshed_tokens() {
    use clap::Parser as _;
    let args = oracle_sim::cli::Args::try_parse_from(["oracle-sim", "--synthetic", "10"]).unwrap();
    assert_eq!(
        oracle_sim::cli::sim_config(&args)
            .unwrap()
            .broker
            .token_ttl_s,
        2_628_000
    );
    let args = oracle_sim::cli::Args::try_parse_from([
        "oracle-sim",
        "--synthetic",
        "10",
        "--token-expires-in",
        "600",
        "--token-ttl",
        "600",
    ])
    .unwrap();
    let b = oracle_sim::cli::sim_config(&args).unwrap().broker;
    assert_eq!((b.tokens[0].expires_in_s, b.token_ttl_s), (600, 600));
    let e = oracle_sim::cli::Args::try_parse_from(["oracle-sim", "--token-ttl", "0"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--token-ttl"), "{e}");
}

/// An extra holiday (a soak's Good Friday) closes every symbol for that day in its own zone:
/// MARKET_CLOSED, no history bar; the days around it trade; always-open ignores it.
#[test]
fn an_extra_holiday_closes_the_market_for_that_day_only() {
    let good_friday = t("2024-03-08T00:00:00Z") / 86_400_000;
    let broker = |mode: CalendarMode| {
        let mut cfg = BrokerConfig::default();
        cfg.calendar = mode;
        cfg.holidays = vec![("Good Friday".into(), good_friday)];
        let market = Market::new(
            vec![eurusd_over_a_weekend()],
            Start::At(t("2024-03-08T18:00:00Z")),
        );
        Broker::new(cfg, market, 1_700_000_000_000).unwrap()
    };
    let b = broker(CalendarMode::Realistic);
    assert!(
        !b.bar_in_hours(0, t("2024-03-08T18:00:00Z"), M15),
        "the holiday"
    );
    assert!(
        !b.bar_in_hours(0, t("2024-03-09T12:00:00Z"), M15),
        "Saturday"
    );
    assert!(
        b.bar_in_hours(0, t("2024-03-07T18:00:00Z"), M15),
        "the day before"
    );
    assert!(b.bar_in_hours(0, t("2024-03-11T12:00:00Z"), M15), "Monday");
    let open = broker(CalendarMode::AlwaysOpen);
    assert!(open.bar_in_hours(0, t("2024-03-08T18:00:00Z"), M15));
    let mut h = H::new(CalendarMode::Realistic, "2024-03-08T18:00:00Z");
    h.b = b;
    h.c = h.b.connect(h.now);
    h.req(Request::ApplicationAuth {
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
    });
    h.req(Request::AccountAuth {
        account_id: ACC,
        access_token: DEFAULT_ACCESS_TOKEN.into(),
    });
    let evs = h.buy();
    assert!(
        matches!(
            &evs[..],
            [Event::OrderError {
                code: ErrorCode::MarketClosed,
                ..
            }]
        ),
        "{evs:?}"
    );
    assert_eq!(h.positions(), 0, "no fill on the holiday");
}

/// A timed broker (the DST's) steps to each `poll_timeout`; it must never ask for a time not
/// after the one it was just given, or a driver that waits for it spins forever.
fn timeouts_move_on(start: &str, live_bars: usize) {
    let mut cfg = BrokerConfig::default();
    cfg.calendar = CalendarMode::Realistic;
    cfg.speed = oracle_sim::config::Speed::Times(3_600.0);
    let mut market = Market::new(vec![eurusd_over_a_weekend()], Start::At(t(start)));
    market.limit_live_bars(live_bars);
    let mut now = 1_700_000_000_000;
    let mut b = Broker::new(cfg, market, now).unwrap();
    for step in 0..10_000 {
        let Some(next) = b.poll_timeout() else {
            return;
        };
        assert!(
            next > now || step == 0,
            "{start}: step {step}: timeout {next} not after {now} (market at {})",
            b.market().now_ms
        );
        now = now.max(next);
        b.handle_timeout(now);
        while b.poll_output().is_some() {}
    }
    panic!("{start}: still asking for timeouts after 10,000 steps");
}

#[test]
fn a_timed_realistic_replay_that_ends_before_saturday_maintenance_asks_for_no_timeout_due_forever()
{
    // Friday 18:00 – 20:00 UTC: the next Saturday window is after the replay's end.
    timeouts_move_on("2024-03-08T18:00:00Z", 8);
}

#[test]
fn a_timed_realistic_replay_inside_saturday_maintenance_asks_for_no_timeout_due_forever() {
    // Saturday 06:30 UTC: the market clock is inside the window.
    timeouts_move_on("2024-03-09T06:30:00Z", 8);
}

#[test]
fn realistic_index_and_stock_hours_are_new_york_time() {
    let us500 = SymbolHours::for_symbol("US500", CalendarMode::Realistic);
    assert_eq!(us500.time_zone, "America/New_York");
    let c = us500.calendar();
    // Tuesday 2024-03-12, two days after New York went to EDT (UTC-4).
    assert!(c.is_open(t("2024-03-12T20:59:00Z")), "16:59 EDT");
    assert!(!c.is_open(t("2024-03-12T21:30:00Z")), "the daily break");
    assert_eq!(
        c.next_open(t("2024-03-12T21:30:00Z")),
        Some(t("2024-03-12T22:00:00Z"))
    );
    let aapl = SymbolHours::for_symbol("AAPL", CalendarMode::Realistic).calendar();
    assert!(!aapl.is_open(t("2024-03-12T13:29:00Z")), "09:29 EDT");
    assert!(aapl.is_open(t("2024-03-12T13:30:00Z")), "09:30 EDT");
    assert_eq!(
        aapl.next_close(t("2024-03-12T13:30:00Z")),
        Some(t("2024-03-12T20:00:00Z")),
        "16:00 EDT"
    );
    assert!(!aapl.is_open(t("2024-03-16T15:00:00Z")), "Saturday");
}

#[test]
fn saturday_maintenance_at_a_timed_speed_disconnects_then_refuses_with_its_wall_end() {
    let mut cfg = BrokerConfig::default();
    cfg.calendar = CalendarMode::Realistic;
    cfg.speed = oracle_sim::Speed::Times(3600.0); // one market hour per wall second
    let now0 = 1_700_000_000_000;
    let market = Market::new(
        vec![eurusd_over_a_weekend()],
        Start::At(t("2024-03-09T05:30:00Z")),
    );
    let mut b = Broker::new(cfg, market, now0).unwrap();
    let auth = |b: &mut Broker, c: ConnId, now: i64| -> Vec<Output> {
        b.handle_request(
            now,
            c,
            Some("app".into()),
            Request::ApplicationAuth {
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: DEFAULT_CLIENT_SECRET.into(),
            },
        );
        std::iter::from_fn(|| b.poll_output()).collect()
    };
    let c = b.connect(now0);
    let outs = auth(&mut b, c, now0);
    assert!(
        matches!(
            &outs[..],
            [Output::Send {
                event: Event::ApplicationAuthRes,
                ..
            }]
        ),
        "{outs:?}"
    );
    // 06:00 market time is half a wall second away, and a timer.
    assert!(b.poll_timeout().is_some_and(|w| w <= now0 + 500));
    b.handle_timeout(now0 + 500);
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    assert!(
        outs.iter().any(|o| matches!(o, Output::Send { conn, event: Event::ClientDisconnect { .. }, .. } if *conn == c)),
        "{outs:?}"
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Close { conn, .. } if *conn == c))
    );
    b.disconnect(c, now0 + 500);
    // Inside the window: refused with the wall time the replay reaches 08:00.
    let c2 = b.connect(now0 + 1_000);
    let outs = auth(&mut b, c2, now0 + 1_000);
    assert!(
        matches!(&outs[..], [
            Output::Send { event: Event::Refused { code: ErrorCode::ServerIsUnderMaintenance, maintenance_end_ms: Some(end), .. }, .. },
            Output::Close { .. },
        ] if *end == now0 + 2_500),
        "{outs:?}"
    );
    b.disconnect(c2, now0 + 1_000);
    // After it: business as usual.
    let c3 = b.connect(now0 + 2_500);
    let outs = auth(&mut b, c3, now0 + 2_500);
    assert!(
        matches!(
            &outs[..],
            [Output::Send {
                event: Event::ApplicationAuthRes,
                ..
            }]
        ),
        "{outs:?}"
    );
}
