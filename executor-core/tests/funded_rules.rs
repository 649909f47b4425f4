//! A funded account's optional rules in the executor core, on a virtual clock (time is a
//! parameter everywhere): flat before the weekend (`risk.flat_before_weekend`: each symbol's
//! weekend from its own trading schedule, the positions closed by `Timer::Weekend`, entries
//! refused `FAIL|WEEKEND` until the open after it) and news windows (`risk.news`: entries
//! refused `FAIL|NEWS_WINDOW` within ±N minutes of an event targeting the symbol, exits held
//! and sent at the window's end; a flatten always goes).

mod common;

use common::{
    D, FRI_2200, H, M1, SAT_NOON, SUN_2200, assert_entry_not_chased_at, core_at, fx, hours_book,
    index, item, key, plain_cfg as cfg,
};
use oracle_ctrader::calendar::TradingCalendar;
use oracle_executor_core::config::from_value;
use oracle_executor_core::exec::{ExecutorCore, SideId};
use oracle_executor_core::gather::Timer;
use oracle_executor_core::journal::{Record, Replayed, encode_lines};
use oracle_executor_core::policy::AckKind;
use oracle_executor_core::restrictions::{NewsEvent, Restrictions, WeekEnd, parse_news, week_end};
use oracle_executor_core::side::SideCore;
use oracle_ipc::Action;

/// Friday 2026-12-04 21:44 UTC.
const FRI_2144: i64 = 1_796_420_640;
/// Friday 2026-12-04 21:45 UTC: 15 minutes before the FX week closes.
const FRI_2145: i64 = 1_796_420_700;
/// Wednesday 2026-12-09 12:00 UTC.
const WED_NOON: i64 = 1_796_817_600;
/// Friday 2026-12-11 13:30 UTC: a news event.
const NFP: i64 = 1_796_995_800;

/// The weekend of `cal` as the shell computes it at `now` (Unix s).
fn week_end_of(cal: &TradingCalendar, now: i64) -> Option<WeekEnd> {
    week_end(now * 1000, |t| cal.next_close(t), |t| cal.next_open(t))
}

/// `risk.flat_before_weekend` at `minutes`, EURUSD's weekend from `cal` as of `now`.
fn weekend_rules(minutes: u32, cal: &TradingCalendar, now: i64) -> Restrictions {
    let mut r = Restrictions {
        weekend_minutes: Some(minutes),
        ..Restrictions::default()
    };
    r.set_week_end("EURUSD", now * 1000, week_end_of(cal, now));
    r
}

fn nfp() -> NewsEvent {
    NewsEvent {
        at_ms: NFP * 1000,
        targets: vec!["USD".into(), "US500".into()],
        title: "US Non-Farm Payrolls".into(),
    }
}

/// `risk.news` at ±`minutes` with the NFP event.
fn news_rules(minutes: u32) -> Restrictions {
    Restrictions {
        news_minutes: Some(minutes),
        news: vec![nfp()],
        ..Restrictions::default()
    }
}

fn exec_core(side: SideCore) -> ExecutorCore {
    ExecutorCore::new(cfg(), Some(side), None, Default::default())
}

fn we(close: i64, open: i64) -> Option<WeekEnd> {
    Some(WeekEnd {
        close_ms: close * 1000,
        open_ms: open * 1000,
    })
}

#[test]
fn the_weekend_is_each_schedules_last_close_of_the_week_not_a_fixed_friday_2200() {
    // FX: Friday 22:00 UTC to Sunday 22:00 UTC, found mid-week and while it is under way.
    assert_eq!(
        week_end_of(&fx(), WED_NOON - 7 * 86_400),
        we(FRI_2200, SUN_2200)
    );
    assert_eq!(week_end_of(&fx(), SAT_NOON), we(FRI_2200, SUN_2200));
    // Once the market opened again: the next week's.
    assert_eq!(
        week_end_of(&fx(), SUN_2200),
        we(FRI_2200 + 7 * 86_400, SUN_2200 + 7 * 86_400)
    );
    // An index with a daily hour's break (New York 17:00-18:00): the break is no weekend; the
    // week ends Friday 17:00 New York = 22:00 UTC in December, opens Sunday 23:00 UTC.
    assert_eq!(
        week_end_of(&index(), WED_NOON),
        we(1_797_026_400, 1_797_202_800)
    );
    // The week New York leaves summer time (Sunday 2026-11-01): Friday 17:00 EDT = 21:00 UTC,
    // Sunday 18:00 EST = 23:00 UTC.
    assert_eq!(
        week_end_of(&index(), 1_793_188_800),
        we(1_793_394_000, 1_793_574_000)
    );
    // A symbol whose week ends at another hour: Frankfurt 08:00-22:00 Monday to Friday (its
    // nights are no weekend): Friday 22:00 CET = 21:00 UTC, Monday 08:00 CET = 07:00 UTC.
    let xetra: Vec<(u32, u32)> = (1..6).map(|d| (d * D + 8 * H, d * D + 22 * H)).collect();
    let de40 = TradingCalendar::new("Europe/Berlin", &xetra, &[]).expect("valid calendar");
    assert_eq!(
        week_end_of(&de40, WED_NOON),
        we(1_797_022_800, 1_797_231_600)
    );
    // Christmas Day on a Friday: the week's last close is Thursday's midnight.
    assert_eq!(
        week_end_of(&fx(), 1_798_156_800 - 86_400),
        we(1_798_156_800, 1_798_408_800)
    );
    // Open all week: no weekend.
    assert_eq!(week_end_of(&TradingCalendar::always_open(), WED_NOON), None);
}

#[test]
fn entries_from_15_minutes_before_the_weeks_last_close_to_the_open_are_refused_weekend() {
    let rules = weekend_rules(15, &fx(), WED_NOON - 7 * 86_400);
    // 21:44: before the flat instant, the entry goes.
    let bt = FRI_2144 - M1;
    let mut core = core_at(Action::Wait, None, bt);
    core.restrict = rules.clone();
    let mut book = hours_book(fx());
    let out = book.run(&mut core, FRI_2144, &[item(Action::LongWeak, bt)]);
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
    assert_eq!(book.submitted.len(), 1);

    // 21:45: FAIL|WEEKEND, nothing sent, missed (never chased), said in the ledger's note.
    let bt = FRI_2145 - M1;
    let mut core = core_at(Action::Wait, None, bt);
    core.restrict = rules.clone();
    let mut book = hours_book(fx());
    let out = book.run(&mut core, FRI_2145, &[item(Action::LongWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("WEEKEND".into()), "{out:?}");
    assert_eq!(out[0].2.as_ref().map(|r| r.code()), Some("WEEKEND".into()));
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    assert!(core.policy.models[&key()].missed);
    let note = core.notes.get(&key()).expect("a note for the ledger");
    assert!(
        note.contains("flat before the weekend") && note.contains("2026-12-06T22:00:00"),
        "{note}"
    );
    // The same target at Sunday's open: never chased.
    assert_entry_not_chased_at(&mut book, &mut core, SUN_2200);

    // Saturday (the market closed): WEEKEND, not MARKET_CLOSED.
    let bt = SAT_NOON - 2 * M1;
    let mut core = core_at(Action::Wait, None, bt);
    core.restrict = rules.clone();
    let out = book.run(&mut core, SAT_NOON, &[item(Action::LongWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("WEEKEND".into()), "{out:?}");

    // Sunday 22:01, the market open again: the rule is over.
    let mut core = core_at(Action::Wait, None, SUN_2200);
    core.restrict = rules;
    let out = book.run(
        &mut core,
        SUN_2200 + M1,
        &[item(Action::LongWeak, SUN_2200)],
    );
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
}

#[test]
fn at_15_minutes_before_the_close_the_weekend_timer_closes_every_position_on_the_symbol() {
    let now = FRI_2144;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), now - 30 * M1);
    core.policy.handle_bar(&key(), now - M1);
    let mut ex = exec_core(core);
    ex.set_restrictions(&Restrictions {
        weekend_minutes: Some(15),
        ..Restrictions::default()
    });
    // The shell asks its calendar for each configured symbol's weekend, once.
    assert_eq!(ex.week_ends_due(now * 1000), ["EURUSD"]);
    ex.set_week_end("EURUSD", now * 1000, week_end_of(&fx(), now));
    assert!(ex.week_ends_due(now * 1000).is_empty());

    let origin_ms = now * 1000 - 5_000;
    let mono = |t: i64| t * 1000 - origin_ms;
    ex.arm_weekend(now * 1000, mono(now));
    assert_eq!(ex.poll_timeout(), Some(mono(FRI_2145)));
    assert!(ex.handle_timeout(mono(FRI_2145) - 1).is_empty());
    assert_eq!(ex.handle_timeout(mono(FRI_2145)), [Timer::Weekend]);
    assert_eq!(
        ex.handle_weekend(FRI_2145 * 1000, mono(FRI_2145)),
        [SideId::Live]
    );
    let mut book = hours_book(fx());
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, FRI_2145);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{FRI_2145}-F")]);
    let st = &side.policy.models[&key()];
    assert!(st.real.is_none() && st.missed, "{st:?}");
    let note = side.notes.get(&key()).expect("a note for the ledger");
    assert!(note.contains("flat before the weekend"), "{note}");
    let rep = Replayed::from_bytes(&book.journal);
    assert!(rep.models[&key()].real.is_none(), "the close is journaled");
    // Nothing left to close: disarmed.
    ex.arm_weekend(FRI_2145 * 1000, mono(FRI_2145));
    assert_eq!(ex.poll_timeout(), None);
}

#[test]
fn a_restart_inside_the_flat_window_recomputes_the_weekend_from_the_schedule_and_closes_at_once() {
    // The executor restarts at 21:50 with a position (the journal knows nothing of weekends).
    let now = FRI_2145 + 5 * M1;
    let core = core_at(Action::LongWeak, Some(Action::LongWeak), now - 30 * M1);
    let mut ex = exec_core(core);
    ex.set_restrictions(&weekend_rules(15, &fx(), now));
    ex.arm_weekend(now * 1000, 7);
    assert_eq!(ex.poll_timeout(), Some(7), "due at once");
    assert_eq!(ex.handle_timeout(7), [Timer::Weekend]);
    assert_eq!(ex.handle_weekend(now * 1000, 7), [SideId::Live]);
    let mut book = hours_book(fx());
    book.drive(ex.side_mut(SideId::Live).expect("live"), now);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{now}-F")]);

    // A position still open after the close (say its close was refused): nothing can go
    // while the market is closed; the timer is not armed over the weekend.
    let core = core_at(Action::LongWeak, Some(Action::LongWeak), SAT_NOON - 30 * M1);
    let mut ex = exec_core(core);
    ex.set_restrictions(&weekend_rules(15, &fx(), SAT_NOON));
    ex.arm_weekend(SAT_NOON * 1000, 0);
    assert_eq!(ex.poll_timeout(), None);
    assert!(ex.handle_weekend(SAT_NOON * 1000, 0).is_empty());
}

#[test]
fn in_the_week_new_york_leaves_summer_time_the_index_is_flattened_at_2045_utc() {
    // Friday 2026-10-30 17:00 EDT = 21:00 UTC: flat at 20:45 UTC (not 21:45, not 22:00).
    let wed = 1_793_188_800;
    let fri_2045 = 1_793_393_100;
    let core = core_at(Action::LongWeak, Some(Action::LongWeak), wed);
    let mut ex = exec_core(core);
    ex.set_restrictions(&weekend_rules(15, &index(), wed));
    ex.arm_weekend(wed * 1000, 0);
    assert_eq!(ex.poll_timeout(), Some((fri_2045 - wed) * 1000));
    // An entry at 20:44 UTC goes, one at 20:45 is refused.
    let side = ex.side(SideId::Live).expect("live");
    assert_eq!(side.restrict.entry_refusal("EURUSD", fri_2045 - M1), None);
    assert_eq!(
        side.restrict
            .entry_refusal("EURUSD", fri_2045)
            .map(|r| r.code()),
        Some("WEEKEND".into())
    );
}

#[test]
fn the_news_file_is_parsed_sorted_and_every_bad_line_is_named_by_file_and_line() {
    let text = "# funded-account news, UTC\n\
                time,targets,title\n\
                \n\
                2026-12-11T13:30:00Z,USD US500 US30,US Non-Farm Payrolls, November\n\
                2026-12-10T13:45:00+00:00,EUR,ECB rate decision\n";
    let ev = parse_news("news.csv", text).expect("valid file");
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].title, "ECB rate decision");
    assert_eq!(ev[1].at_ms, NFP * 1000);
    assert_eq!(ev[1].targets, ["USD", "US500", "US30"]);
    assert_eq!(ev[1].title, "US Non-Farm Payrolls, November");

    let bad = "2026-12-11 13:30,USD,NFP\n\
               2026-12-11T13:30:00Z, ,NFP\n\
               2026-12-11T13:30:00Z,US D$,NFP\n\
               2026-12-11T13:30:00Z,USD\n\
               2026-12-11T13:30:00Z,USD,\n\
               2026-12-11T13:30:00Z,USD,fine\n";
    let errs = parse_news("/etc/oracle/news.csv", bad).expect_err("bad lines");
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/oracle/news.csv:1: time `2026-12-11 13:30`"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("/etc/oracle/news.csv:2: no targets"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("/etc/oracle/news.csv:3: target `D$`"),
        "{errs:?}"
    );
    assert!(
        errs[3].starts_with("/etc/oracle/news.csv:4: expected `time,targets,title`"),
        "{errs:?}"
    );
    assert!(
        errs[4].starts_with("/etc/oracle/news.csv:5: the event has no title"),
        "{errs:?}"
    );
}

#[test]
fn an_event_targets_the_symbols_holding_its_currency_and_the_symbols_it_names() {
    let e = nfp();
    assert!(e.targets("EURUSD") && e.targets("USDJPY") && e.targets("xauusd"));
    assert!(e.targets("US500"));
    assert!(!e.targets("EURGBP") && !e.targets("US30"));
    let all = NewsEvent {
        targets: vec!["*".into()],
        ..nfp()
    };
    assert!(all.targets("EURGBP"));
}

#[test]
fn an_entry_is_refused_within_two_minutes_of_an_event_both_edges_included() {
    let r = news_rules(2);
    let code = |sym: &str, t: i64| r.entry_refusal(sym, t).map(|r| r.code());
    assert_eq!(code("EURUSD", NFP - 121), None);
    assert_eq!(code("EURUSD", NFP - 120), Some("NEWS_WINDOW".into()));
    assert_eq!(code("EURUSD", NFP), Some("NEWS_WINDOW".into()));
    assert_eq!(code("EURUSD", NFP + 120), Some("NEWS_WINDOW".into()));
    assert_eq!(code("EURUSD", NFP + 121), None);
    // Not a target.
    assert_eq!(code("EURGBP", NFP), None);
    // Two events whose windows overlap make one window (held exits go at its end).
    let mut two = news_rules(2);
    two.news.push(NewsEvent {
        at_ms: (NFP + 180) * 1000,
        ..nfp()
    });
    assert_eq!(
        two.news_window("EURUSD", NFP).map(|w| w.until_ms()),
        Some((NFP + 301) * 1000)
    );

    // Through a batch: FAIL|NEWS_WINDOW at the window's first second, nothing sent, missed.
    let bt = NFP - 120 - M1;
    let mut core = core_at(Action::Wait, None, bt);
    core.restrict = news_rules(2);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, NFP - 120, &[item(Action::ShortWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("NEWS_WINDOW".into()), "{out:?}");
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    assert!(core.policy.models[&key()].missed);
    let note = core.notes.get(&key()).expect("a note for the ledger");
    assert!(note.contains("US Non-Farm Payrolls"), "{note}");
    // One second after the window: the entry goes.
    let bt = NFP + 121 - M1;
    let mut core = core_at(Action::Wait, None, bt);
    core.restrict = news_rules(2);
    let out = book.run(&mut core, NFP + 121, &[item(Action::ShortWeak, bt)]);
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
}

#[test]
fn an_exit_inside_a_news_window_is_held_and_sent_once_at_its_end() {
    let bt = NFP - M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    core.restrict = news_rules(2);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, NFP, &[item(Action::Wait, bt)]);
    assert_eq!(out[0].0, AckKind::WaitSync("NEWS_WINDOW".into()), "{out:?}");
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    let end = NFP + 121;
    assert_eq!(out[0].1.held.and_then(|c| c.until_ms), Some(end * 1000));
    let note = core.notes.get(&key()).expect("a note for the ledger");
    assert!(note.contains("exit held: news window"), "{note}");
    assert_eq!(core.news_hold_until("EURUSD", NFP * 1000), Some(end * 1000));
    let mut journal = book.journal.clone();
    journal.extend(
        encode_lines(&[Record::Ack {
            model: key(),
            bt,
            line: format!(
                "ACK|EURUSD|WAIT|WAIT_SYNC|NEWS_WINDOW|TF:M1|BT:{}",
                oracle_ipc::Iso(bt)
            ),
        }])
        .expect("encodable"),
    );

    // The held-exit timer at the window's end sends it, once.
    let origin_ms = NFP * 1000 - 1_000;
    let mono = |t: i64| t * 1000 - origin_ms;
    let mut ex = exec_core(core);
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
    ex.arm_held_exits(NFP * 1000, mono(NFP), Some(end * 1000));
    assert_eq!(ex.poll_timeout(), Some(mono(end)));
    assert_eq!(ex.handle_timeout(mono(end)), [Timer::HeldExit]);
    assert_eq!(ex.release_held_exits(end, mono(end)), [SideId::Live]);
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, end);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{end}-C")]);
    assert!(side.policy.models[&key()].real.is_none());
    let note = side
        .notes
        .get(&key())
        .expect("a note for the next ledger row");
    assert!(
        note.contains("exit held by a news window, sent at its end"),
        "{note}"
    );
    assert!(ex.held_symbols().is_empty());

    // Past the window with the exit still held (the timer missed): due now, never dropped.
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    core.restrict = news_rules(2);
    book.run(&mut core, NFP, &[item(Action::Wait, bt)]);
    assert_eq!(
        core.news_hold_until("EURUSD", (end + 60) * 1000),
        Some((end + 60) * 1000)
    );
    // A restart while it was held (the journal's ACK says NEWS_WINDOW): still held, sent at
    // the first release (the shell releases at once when the market is open).
    let rep = Replayed::from_bytes(&journal);
    let ex = exec_core(SideCore::new("live", &cfg(), &rep));
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
}

#[test]
fn a_flatten_inside_a_news_window_is_never_held() {
    // The guard's flatten at a limit (and a person's, and the weekend's) beats the news rule.
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), NFP - 10 * M1);
    core.restrict = news_rules(2);
    assert_eq!(
        core.start_flatten(NFP, None, "prop-firm guard HALTED_DAILY_LOSS"),
        1
    );
    let mut book = hours_book(fx());
    book.drive(&mut core, NFP);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{NFP}-F")]);
    assert!(core.policy.models[&key()].real.is_none());
}

#[test]
fn the_rules_are_off_by_default_and_their_keys_are_checked_by_name() {
    let c = from_value(&serde_json::json!({})).expect("valid");
    assert_eq!(c.risk.flat_before_weekend_minutes, None);
    assert_eq!(c.risk.news, None);
    assert!(!Restrictions::new(&c.risk, vec![nfp()]).any());

    let c = from_value(&serde_json::json!({"risk": {
        "flat_before_weekend": {"minutes": 15},
        "news": {"file": "news.csv"}
    }}))
    .expect("valid");
    assert_eq!(c.risk.flat_before_weekend_minutes, Some(15));
    let n = c.risk.news.clone().expect("news on");
    assert_eq!((n.file.as_str(), n.minutes), ("news.csv", 2));
    let r = Restrictions::new(&c.risk, vec![nfp()]);
    assert_eq!(
        (r.weekend_minutes, r.news_minutes, r.news.len()),
        (Some(15), Some(2), 1)
    );

    let keys = |v: serde_json::Value| -> Vec<String> {
        from_value(&v)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(
        keys(serde_json::json!({"risk": {"flat_before_weekend": {"minutes": 0}}})),
        ["risk.flat_before_weekend.minutes"]
    );
    assert_eq!(
        keys(serde_json::json!({"risk": {"flat_before_weekend": {"minutes": 15, "hours": 1}}})),
        ["risk.flat_before_weekend.hours"]
    );
    assert_eq!(
        keys(serde_json::json!({"risk": {"flat_before_weekend": 15}})),
        ["risk.flat_before_weekend"]
    );
    assert_eq!(
        keys(serde_json::json!({"risk": {"news": {"minutes": 2}}})),
        ["risk.news.file"]
    );
    assert_eq!(
        keys(serde_json::json!({"risk": {"news": {"file": "news.csv", "minutes": -1}}})),
        ["risk.news.minutes"]
    );
    assert_eq!(
        keys(serde_json::json!({"risk": {"news": "news.csv"}})),
        ["risk.news"]
    );
}

#[test]
fn without_the_rules_the_closed_markets_answers_are_unchanged() {
    // No restriction: Friday 21:45 trades, Saturday is MARKET_CLOSED (not WEEKEND).
    let bt = FRI_2145 - M1;
    let mut core = core_at(Action::Wait, None, bt);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, FRI_2145, &[item(Action::LongWeak, bt)]);
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
    let bt = SAT_NOON - 2 * M1;
    let mut core = core_at(Action::Wait, None, bt);
    let out = book.run(&mut core, SAT_NOON, &[item(Action::LongWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("MARKET_CLOSED".into()), "{out:?}");
}
