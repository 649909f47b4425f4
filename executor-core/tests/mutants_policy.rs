//! The executor policy at the edges its unit tests do not reach (each test kills mutants that
//! survived `scripts/mutants --area policy`): the remembered bars across a weekend gap, a
//! re-streamed bar, the stale age and the spread limit exactly at their limits, the margin
//! need exactly at its share, the prices an entry is based on, and the state it journals.
//! Time is always a parameter: bar times are fixed dates, `now` is part of the market facts.

mod common;

use common::eurusd;
use oracle_executor_core::config::{ExecutorConfig, SymbolConfig, from_value};
use oracle_executor_core::key::{KeyText, key_of};
use oracle_executor_core::policy::{
    AckKind, ActionName, Exec, Market, ModelState, Plan, Policy, RealPos, Refusal, StreamKey,
};
use oracle_executor_core::volume::SymbolSpec;
use oracle_ipc::{Action, Timeframe};

const M15: i64 = 900;

/// Unix seconds of an RFC 3339 UTC time.
fn t(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn cfg() -> ExecutorConfig {
    let mut c = from_value(&serde_json::json!({})).unwrap();
    c.symbols.insert(
        "EURUSD".into(),
        SymbolConfig {
            enabled: true,
            lots: [0.01, 0.03, 0.05],
            max_spread_points: Some(20.0),
            slippage_points: None,
            broker_symbol: "EURUSD".into(),
        },
    );
    c
}

fn key() -> StreamKey {
    key_of("EURUSD", Timeframe::M15).unwrap()
}

/// Market facts `after` seconds past the close of the M15 bar opened at `bt`.
fn market(spec: &SymbolSpec, bt: i64, after: i64, bid: f64, ask: f64) -> Market<'_> {
    Market {
        now: bt + M15 + after,
        spec: Some(spec),
        quote: Some((bid, ask)),
        free_margin: Some(1e6),
        halt: None,
        connected: true,
        closed: None,
    }
}

/// The outcome of a plan with a broker that fills everything at the order's base price.
fn fill(p: &mut Policy, plan: &Plan) -> AckKind {
    let close = plan.close.as_ref().map(|r| Exec::Filled {
        position_id: r.position_id,
        price: 1.2,
        volume: r.volume,
    });
    let open = match &plan.entry {
        Some(Ok(o)) => Some(Exec::Filled {
            position_id: 7,
            price: o.base_price,
            volume: o.volume,
        }),
        _ => None,
    };
    p.complete(plan, close, open)
}

/// A bar at `bt` is streamed, then its signal `a` is decided 1 s after the close and filled.
fn signal(p: &mut Policy, c: &ExecutorConfig, bt: i64, a: Action) -> (Plan, AckKind) {
    let spec = eurusd();
    p.handle_bar(&key(), bt);
    let plan = p.decide(
        c,
        &key(),
        Timeframe::M15,
        a,
        bt,
        &market(&spec, bt, 1, 1.1, 1.1001),
    );
    let ack = fill(p, &plan);
    (plan, ack)
}

#[test]
fn a_transition_on_the_first_bar_after_a_weekend_is_fresh_and_enters() {
    let c = cfg();
    let mut p = Policy::new();
    // Friday 2025-01-10: the market's last M15 bars, their signals WAIT.
    let friday = t("2025-01-10T21:30:00Z");
    signal(&mut p, &c, friday, Action::Wait);
    signal(&mut p, &c, friday + M15, Action::Wait);
    // Sunday 22:00 UTC, 48 h 15 min later: the first bar of the week is the one right after
    // Friday's last, so its LONG is a transition the executor saw.
    let sunday = t("2025-01-12T22:00:00Z");
    let (plan, ack) = signal(&mut p, &c, sunday, Action::LongWeak);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
    assert!(matches!(ack, AckKind::Ok { ticket: 7, .. }), "{ack:?}");
    assert_eq!(p.last_bar(&key()), Some(sunday));
}

#[test]
fn a_bar_streamed_again_after_a_reconnect_does_not_push_out_the_bar_before_it() {
    let c = cfg();
    let mut p = Policy::new();
    let friday = t("2025-01-10T21:45:00Z");
    signal(&mut p, &c, friday, Action::Wait);
    let sunday = t("2025-01-12T22:00:00Z");
    // The stream re-sends the week's first bar on every reconnect, before its signal arrives.
    for _ in 0..10 {
        p.handle_bar(&key(), sunday);
    }
    // And an older bar arriving late changes nothing either.
    p.handle_bar(&key(), friday - M15);
    assert_eq!(p.last_bar(&key()), Some(sunday));
    let (plan, _) = signal(&mut p, &c, sunday, Action::ShortWeak);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
}

#[test]
fn eight_bars_are_remembered_so_a_late_signal_still_finds_the_bar_before_its_own() {
    let c = cfg();
    let mut p = Policy::new();
    let friday = t("2025-01-10T21:45:00Z");
    signal(&mut p, &c, friday, Action::Wait);
    // The week's first bar and six more are streamed before the first one's signal is decided
    // (the stale limit is the decision's concern, here it is generous).
    let sunday = t("2025-01-12T22:00:00Z");
    for i in 0..7 {
        p.handle_bar(&key(), sunday + i * M15);
    }
    let mut c = c;
    c.risk.stale_after_secs = 10 * M15;
    let spec = eurusd();
    let m = market(&spec, sunday, 6 * M15 + 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, sunday, &m);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
    // One more bar and Friday's is forgotten: the transition can no longer be seen.
    p.handle_bar(&key(), sunday + 7 * M15);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, sunday, &m);
    assert!(plan.entry.is_none() && plan.missed, "{plan:?}");
}

#[test]
fn a_bar_remembered_first_is_consecutive_only_exactly_one_period_after_the_last_signal() {
    let c = cfg();
    let spec = eurusd();
    let last = t("2025-01-15T10:00:00Z");
    // After a restart: the journal says the last signal was WAIT on `last`; no bar remembered.
    let restarted = || {
        let mut p = Policy::new();
        p.models.insert(
            key(),
            ModelState {
                target: Some(ActionName(Action::Wait)),
                last_bt: Some(last),
                real: None,
                missed: false,
            },
        );
        p
    };
    let mut p = restarted();
    let next = last + M15;
    p.handle_bar(&key(), next);
    let m = market(&spec, next, 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, next, &m);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
    // Two periods later: a bar was missed while the executor was down.
    let mut p = restarted();
    let later = last + 2 * M15;
    p.handle_bar(&key(), later);
    let m = market(&spec, later, 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, later, &m);
    assert!(plan.entry.is_none() && plan.missed, "{plan:?}");
}

#[test]
fn a_model_whose_last_target_is_unknown_never_enters() {
    let c = cfg();
    let spec = eurusd();
    let last = t("2025-01-15T10:00:00Z");
    let mut p = Policy::new();
    p.models.insert(
        key(),
        ModelState {
            target: None,
            last_bt: Some(last),
            real: None,
            missed: false,
        },
    );
    p.handle_bar(&key(), last);
    p.handle_bar(&key(), last + M15);
    let m = market(&spec, last + M15, 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, last + M15, &m);
    assert!(plan.entry.is_none() && plan.missed, "{plan:?}");
}

#[test]
fn a_signal_exactly_at_the_stale_age_enters_one_second_later_is_refused() {
    let c = cfg();
    let spec = eurusd();
    let limit = c.risk.stale_after_secs;
    let mut p = Policy::new();
    let bt = t("2025-01-15T10:00:00Z");
    signal(&mut p, &c, bt - M15, Action::Wait);
    p.handle_bar(&key(), bt);
    let at_limit = market(&spec, bt, limit, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, bt, &at_limit);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
    let past = market(&spec, bt, limit + 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, bt, &past);
    assert_eq!(
        plan.entry,
        Some(Err(Refusal::Stale {
            age: limit + 1,
            limit
        }))
    );
}

#[test]
fn a_spread_at_the_limit_up_to_float_noise_enters_a_tenth_of_a_point_more_is_refused() {
    let c = cfg();
    let spec = eurusd();
    let mut p = Policy::new();
    let bt = t("2025-01-15T10:00:00Z");
    signal(&mut p, &c, bt - M15, Action::Wait);
    p.handle_bar(&key(), bt);
    // 0.7002 − 0.7 is 20 points plus float noise (20.0000000000089).
    let (bid, ask) = (0.7, 0.7002);
    let points = (ask - bid) / spec.point();
    assert!(points > 20.0 && points < 20.0 + 1e-9, "{points}");
    let m = market(&spec, bt, 1, bid, ask);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, bt, &m);
    assert!(matches!(plan.entry, Some(Ok(_))), "{plan:?}");
    let m = market(&spec, bt, 1, 1.1, 1.100201);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongWeak, bt, &m);
    assert!(
        matches!(plan.entry, Some(Err(Refusal::Spread { limit, .. })) if limit == 20.0),
        "{plan:?}"
    );
    // Without a symbol limit the risk block's default applies.
    let mut c2 = c.clone();
    c2.symbols.get_mut("EURUSD").unwrap().max_spread_points = None;
    c2.risk.max_spread_points = Some(10.0);
    let m = market(&spec, bt, 1, 1.1, 1.10011);
    let plan = p.decide(&c2, &key(), Timeframe::M15, Action::LongWeak, bt, &m);
    assert!(
        matches!(plan.entry, Some(Err(Refusal::Spread { limit, .. })) if limit == 10.0),
        "{plan:?}"
    );
}

#[test]
fn an_order_may_need_exactly_its_share_of_the_free_margin_not_more() {
    let c = cfg();
    // 90% of 1,000 is 900.
    assert_eq!(Policy::margin_check(&c, 900.0, 1_000.0), Ok(()));
    assert_eq!(
        Policy::margin_check(&c, 900.5, 1_000.0),
        Err(Refusal::Margin {
            need: 900.5,
            free: 1_000.0,
            pct: 90.0
        })
    );
}

#[test]
fn a_buy_is_based_on_the_ask_and_a_sell_on_the_bid() {
    let c = cfg();
    let spec = eurusd();
    for (a, base) in [(Action::LongModerate, 1.1001), (Action::ShortStrong, 1.1)] {
        let mut p = Policy::new();
        let bt = t("2025-01-15T10:00:00Z");
        signal(&mut p, &c, bt - M15, Action::Wait);
        p.handle_bar(&key(), bt);
        let m = market(&spec, bt, 1, 1.1, 1.1001);
        let plan = p.decide(&c, &key(), Timeframe::M15, a, bt, &m);
        let o = plan.entry.unwrap().unwrap();
        assert_eq!((o.action, o.base_price), (a, base));
        assert_eq!(o.slippage_points, c.risk.slippage_points);
    }
}

#[test]
fn a_failed_exit_before_an_entry_leaves_the_model_waiting_for_the_next_transition() {
    let c = cfg();
    let mut p = Policy::new();
    let bt = t("2025-01-15T10:00:00Z");
    signal(&mut p, &c, bt - M15, Action::Wait);
    signal(&mut p, &c, bt, Action::LongWeak);
    // LONG_WEAK → LONG_STRONG: the exit is refused, so the entry is not tried.
    let next = bt + M15;
    p.handle_bar(&key(), next);
    let spec = eurusd();
    let m = market(&spec, next, 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::LongStrong, next, &m);
    assert!(plan.close.is_some() && matches!(plan.entry, Some(Ok(_))));
    let ack = p.complete(&plan, Some(Exec::Refused(Refusal::BrokerDown)), None);
    assert_eq!(ack, AckKind::Fail("BROKER_DOWN".into()));
    let st = &p.models[&key()];
    assert!(st.missed, "{st:?}");
    assert_eq!(st.target, Some(ActionName(Action::LongStrong)));
    assert_eq!(st.real.as_ref().map(|r| r.action.0), Some(Action::LongWeak));
    // A failed exit to WAIT is no missed entry.
    let later = next + M15;
    p.handle_bar(&key(), later);
    let m = market(&spec, later, 1, 1.1, 1.1001);
    let plan = p.decide(&c, &key(), Timeframe::M15, Action::Wait, later, &m);
    let ack = p.complete(&plan, Some(Exec::Refused(Refusal::BrokerDown)), None);
    assert_eq!(ack, AckKind::Fail("BROKER_DOWN".into()));
    assert!(!p.models[&key()].missed);
}

#[test]
fn a_transition_clears_the_missed_mark_and_a_repeated_target_keeps_it() {
    let c = cfg();
    let mut p = Policy::new();
    let bt = t("2025-01-15T10:00:00Z");
    // First signal ever is LONG: missed.
    signal(&mut p, &c, bt, Action::LongWeak);
    assert!(p.models[&key()].missed);
    signal(&mut p, &c, bt + M15, Action::LongWeak);
    assert!(p.models[&key()].missed);
    // WAIT: nothing to miss.
    signal(&mut p, &c, bt + 2 * M15, Action::Wait);
    assert!(!p.models[&key()].missed);
    // A fresh SHORT fills: not missed; holding it stays not missed.
    let (_, ack) = signal(&mut p, &c, bt + 3 * M15, Action::ShortWeak);
    assert!(matches!(ack, AckKind::Ok { .. }));
    assert!(!p.models[&key()].missed);
    let (_, ack) = signal(&mut p, &c, bt + 4 * M15, Action::ShortWeak);
    assert_eq!(ack, AckKind::Hold);
    assert!(!p.models[&key()].missed);
}

#[test]
fn a_model_is_labelled_and_journaled_by_its_symbol_timeframe_and_action_names() {
    let k = key();
    assert_eq!(k.label(), "oracle:EURUSD_M15");
    assert_eq!(k.model_name().to_string(), "EURUSD_M15");
    let st = ModelState {
        target: Some(ActionName(Action::ShortModerate)),
        last_bt: Some(900),
        real: Some(RealPos {
            position_id: 5,
            action: ActionName(Action::LongStrong),
            volume: 500_000,
            price: 1.1,
        }),
        missed: true,
    };
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["target"], "SHORT_MODERATE");
    assert_eq!(json["real"]["action"], "LONG_STRONG");
    let back: ModelState = serde_json::from_value(json).unwrap();
    assert_eq!(back, st);
    let bad =
        serde_json::json!({"target": "LONG_HARD", "last_bt": 1, "real": null, "missed": false});
    let e = serde_json::from_value::<ModelState>(bad).unwrap_err();
    assert!(e.to_string().contains("unknown action"), "{e}");
}

#[test]
fn every_refusal_has_its_code_and_says_why() {
    let cases = [
        (
            Refusal::UnknownSymbol,
            "UNKNOWN_SYMBOL",
            "not in executor_config.json",
        ),
        (Refusal::SymbolDisabled, "SYMBOL_DISABLED", "disabled"),
        (
            Refusal::Unreconciled("an extra position".into()),
            "SYMBOL_UNRECONCILED",
            "an extra position",
        ),
        (
            Refusal::Stale {
                age: 600,
                limit: 60,
            },
            "STALE_SIGNAL",
            "600s ago (limit 60s)",
        ),
        (Refusal::NoPrice, "NO_PRICE", "no live price"),
        (
            Refusal::Spread {
                points: 25.0,
                limit: 20.0,
            },
            "SPREAD",
            "spread 25.0 points is above the limit 20.0",
        ),
        (
            Refusal::Margin {
                need: 950.0,
                free: 1_000.0,
                pct: 90.0,
            },
            "MARGIN",
            "needs 950.00, free margin is 1000.00",
        ),
        (Refusal::BrokerDown, "BROKER_DOWN", "no broker connection"),
        (
            Refusal::Broker {
                code: "not enough-money".into(),
                msg: "m".into(),
            },
            "BROKER_NOT_ENOUGH_MONEY",
            "broker refused: not enough-money m",
        ),
        (
            Refusal::OutcomeUnknown,
            "OUTCOME_UNKNOWN",
            "outcome unknown",
        ),
    ];
    for (r, code, why) in cases {
        assert_eq!(r.code(), code);
        let shown = r.to_string();
        assert!(shown.contains(why), "{shown}");
    }
}

#[test]
fn a_plan_that_does_nothing_names_its_model_target_and_bar() {
    let p = Plan::nothing(&key(), Action::LongWeak, 900);
    assert_eq!(p.key, key());
    assert_eq!((p.target, p.bar_time), (Action::LongWeak, 900));
    assert!(p.close.is_none() && p.entry.is_none() && !p.missed && !p.check_margin);
}
