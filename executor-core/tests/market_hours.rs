//! Market hours in the executor core, on a virtual clock: the broker's trading calendar (the
//! shell computes "closed until …" from `oracle-ctrader`'s `TradingCalendar` and hands it in with
//! the quotes) decides when orders go. No entry into a closed market (a missed entry, never
//! chased); an exit due while closed is held and sent once at the first open instant, by the
//! core's `Timer::HeldExit`, also after a restart. Time is a parameter everywhere.

mod common;

use common::{
    FRI_2200, M1, SAT_NOON, SUN_2200, assert_entry_not_chased_at, core_at, fx, hours_book, index,
    item, key, plain_cfg as cfg,
};
use oracle_ctrader::calendar::TradingCalendar;
use oracle_executor_core::exec::{ExecutorCore, HELD_EXIT_RETRY_MS, SideId};
use oracle_executor_core::gather::Timer;
use oracle_executor_core::journal::{Record, Replayed, encode_lines};
use oracle_executor_core::policy::{AckKind, ActionName, ModelState, RealPos};
use oracle_executor_core::side::SideCore;
use oracle_ipc::Action;

/// Friday 2026-12-04 21:58 UTC (a bar open time).
const FRI_2158: i64 = 1_796_421_480;

#[test]
fn an_entry_at_friday_2159_utc_is_sent_and_one_at_2200_is_missed_market_closed_never_chased() {
    // 21:59: the bar 21:58 closed, the market is open: the entry goes.
    let mut core = core_at(Action::Wait, None, FRI_2158);
    let mut book = hours_book(fx());
    let out = book.run(
        &mut core,
        FRI_2158 + M1,
        &[item(Action::LongWeak, FRI_2158)],
    );
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{FRI_2158}-O")]);

    // 22:00: the bar 21:59 closed as the week did: nothing is sent, FAIL|MARKET_CLOSED.
    let bt = FRI_2158 + M1;
    let mut core = core_at(Action::Wait, None, bt);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, FRI_2200, &[item(Action::LongWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("MARKET_CLOSED".into()), "{out:?}");
    assert_eq!(
        out[0].2.as_ref().map(|r| r.code()),
        Some("MARKET_CLOSED".into())
    );
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    let st = &core.policy.models[&key()];
    assert!(st.missed && st.real.is_none(), "{st:?}");
    // The drift ledger's note says why.
    let note = core.notes.get(&key()).expect("a note for the ledger");
    assert!(
        note.contains("entry missed: market closed until 2026-12-06T22:00:00"),
        "{note}"
    );
    // Sunday's first bar with the same target: never chased.
    assert_entry_not_chased_at(&mut book, &mut core, SUN_2200);
}

#[test]
fn a_market_closed_answer_from_the_broker_is_a_missed_entry_and_holds_an_exit() {
    // The calendar says open, the broker says MARKET_CLOSED.
    let mut core = core_at(Action::Wait, None, FRI_2158);
    let mut book = hours_book(TradingCalendar::always_open());
    book.refuse_all = Some(("MARKET_CLOSED", "Market is closed"));
    let out = book.run(
        &mut core,
        FRI_2158 + M1,
        &[item(Action::LongWeak, FRI_2158)],
    );
    assert_eq!(out[0].0, AckKind::Fail("MARKET_CLOSED".into()), "{out:?}");
    assert!(core.policy.models[&key()].missed);
    assert!(core.held_exits().is_empty());

    // An exit refused MARKET_CLOSED stays due: held for the release at the open.
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), FRI_2158);
    let out = book.run(&mut core, FRI_2158 + M1, &[item(Action::Wait, FRI_2158)]);
    assert_eq!(out[0].0, AckKind::Fail("MARKET_CLOSED".into()), "{out:?}");
    assert_eq!(core.held_exits(), [(key(), "EURUSD".to_string())]);
}

#[test]
fn a_held_exit_goes_at_its_markets_next_open_and_at_once_where_the_calendar_says_open() {
    use oracle_executor_core::policy::Closed;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), FRI_2158);
    let mut book = hours_book(TradingCalendar::always_open());
    book.refuse_all = Some(("MARKET_CLOSED", "Market is closed"));
    let now_ms = (FRI_2158 + M1) * 1000;
    assert_eq!(
        core.next_held_open(now_ms, |_, _| None),
        None,
        "nothing held yet"
    );
    book.run(&mut core, FRI_2158 + M1, &[item(Action::Wait, FRI_2158)]);
    assert_eq!(core.held_exits().len(), 1);
    // Open by the calendar (the broker refused anyway): now.
    assert_eq!(core.next_held_open(now_ms, |_, _| None), Some(now_ms));
    // Closed until Sunday 22:00: then; closed with no open known: never.
    let until = |until_ms| move |s: &str, _| (s == "EURUSD").then_some(Closed { until_ms });
    let sunday = SUN_2200 * 1000;
    assert_eq!(
        core.next_held_open(now_ms, until(Some(sunday))),
        Some(sunday)
    );
    assert_eq!(core.next_held_open(now_ms, until(None)), None);
}

/// The journal line of the ACK the shell writes for the signal `action` at `bt`.
fn ack_record(bt: i64, action: &str, outcome: &str) -> Vec<u8> {
    let line = format!(
        "ACK|EURUSD|{action}|{outcome}|TF:M1|BT:{}",
        oracle_ipc::Iso(bt)
    );
    encode_lines(&[Record::Ack {
        model: key(),
        bt,
        line,
    }])
    .expect("encodable")
}

/// The core over one live side; `now_ms` of the timers is `now * 1000 - origin`.
fn exec_core(side: SideCore) -> ExecutorCore {
    ExecutorCore::new(cfg(), Some(side), None, Default::default())
}

#[test]
fn an_exit_signalled_on_saturday_is_held_then_sent_once_at_sunday_2200_utc() {
    let bt = SAT_NOON - 2 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, SAT_NOON, &[item(Action::Wait, bt)]);
    // Held, not refused and not sent: real stays LONG until the open.
    assert_eq!(
        out[0].0,
        AckKind::WaitSync("MARKET_CLOSED".into()),
        "{out:?}"
    );
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    assert_eq!(
        out[0].1.held.and_then(|c| c.until_ms),
        Some(SUN_2200 * 1000)
    );
    let note = core.notes.get(&key()).expect("a note for the ledger");
    assert!(
        note.contains("exit held: market closed until 2026-12-06T22:00:00"),
        "{note}"
    );
    // The shell journals the ACK after the batch (what a restart reads).
    let mut journal = book.journal.clone();
    journal.extend(ack_record(bt, "WAIT", "WAIT_SYNC|MARKET_CLOSED"));

    // The timer: the timers' clock started 5 s before Saturday noon.
    let origin_ms = SAT_NOON * 1000 - 5_000;
    let mono = |t: i64| t * 1000 - origin_ms;
    let mut ex = exec_core(core);
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
    let open = book.closed(SAT_NOON).and_then(|c| c.until_ms);
    ex.arm_held_exits(SAT_NOON * 1000, mono(SAT_NOON), open);
    assert_eq!(ex.poll_timeout(), Some(mono(SUN_2200)));
    assert!(ex.handle_timeout(mono(SUN_2200) - 1).is_empty());
    assert_eq!(ex.handle_timeout(mono(SUN_2200)), [Timer::HeldExit]);
    assert_eq!(
        ex.release_held_exits(SUN_2200, mono(SUN_2200)),
        [SideId::Live]
    );
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, SUN_2200);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{SUN_2200}-C")]);
    let st = &side.policy.models[&key()];
    assert!(st.real.is_none(), "{st:?}");
    assert_eq!(st.last_bt, Some(bt), "the release is no signal");
    let note = side
        .notes
        .get(&key())
        .expect("a note for the next ledger row");
    assert!(
        note.contains("sent at the open (2026-12-06T22:00:00"),
        "{note}"
    );
    // Exactly once: nothing held, the timer disarmed, a second release sends nothing.
    assert!(ex.held_symbols().is_empty());
    ex.arm_held_exits(SUN_2200 * 1000, mono(SUN_2200), None);
    assert_eq!(ex.poll_timeout(), None);
    assert!(
        ex.release_held_exits(SUN_2200 + 1, mono(SUN_2200) + 1000)
            .is_empty()
    );
    assert_eq!(book.submitted.len(), 1);

    // A restart while the exit was held (Saturday's journal): still sent at the open.
    let rep = Replayed::from_bytes(&journal);
    let mut ex = exec_core(SideCore::new("live", &cfg(), &rep));
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
    let mut book = hours_book(fx());
    assert_eq!(ex.release_held_exits(SUN_2200, 0), [SideId::Live]);
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, SUN_2200);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{SUN_2200}-C")]);
    let rep = Replayed::from_bytes(&book.journal);
    assert!(rep.models[&key()].real.is_none(), "{rep:?}");
    assert!(
        book.journal
            .windows(b"\"filled\"".len())
            .any(|w| w == b"\"filled\""),
        "the close's fill is journaled"
    );
}

#[test]
fn a_release_while_the_market_is_still_closed_holds_again_and_the_timer_waits_a_retry() {
    let bt = SAT_NOON - 2 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    let mut book = hours_book(fx());
    book.run(&mut core, SAT_NOON, &[item(Action::Wait, bt)]);
    let mut ex = exec_core(core);
    // Released too early (a calendar that disagrees): nothing sent, still held.
    assert_eq!(ex.release_held_exits(SAT_NOON + 60, 60_000), [SideId::Live]);
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, SAT_NOON + 60);
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
    // An open instant "now" is not released again before the retry delay.
    ex.arm_held_exits((SAT_NOON + 60) * 1000, 60_000, Some((SAT_NOON + 60) * 1000));
    assert_eq!(ex.poll_timeout(), Some(60_000 + HELD_EXIT_RETRY_MS));
}

#[test]
fn a_market_opening_after_the_last_release_is_released_at_its_open_not_a_retry_later() {
    // The FX exits went at Sunday 22:00; an index exit held at 22:04 opens at 23:00 (the DST's
    // soak at 240x: the retry delay after 22:00's release pushed it to a SIGNAL at 00:00).
    let bt = SAT_NOON - 2 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    let mut book = hours_book(fx());
    book.run(&mut core, SAT_NOON, &[item(Action::Wait, bt)]);
    let mut ex = exec_core(core);
    let released = 1_000_000;
    assert_eq!(ex.release_held_exits(SUN_2200, released), [SideId::Live]);
    // 4 minutes later on both clocks, the next open 56 minutes on: armed for that open.
    let now_ms = released + 240_000;
    let now_utc = (SUN_2200 + 240) * 1000;
    let open = (SUN_2200 + 3_600) * 1000;
    ex.arm_held_exits(now_utc, now_ms, Some(open));
    assert_eq!(ex.poll_timeout(), Some(now_ms + (open - now_utc)));
    // Released again; a market that opens 30 s later goes at its open, not at the retry
    // delay's end (60 s after that release: the delay is for a market already open).
    ex.release_held_exits(SUN_2200 + 240, now_ms);
    ex.arm_held_exits(now_utc, now_ms, Some(now_utc + 30_000));
    assert_eq!(ex.poll_timeout(), Some(now_ms + 30_000));
    // A market open now still waits the retry delay.
    ex.arm_held_exits(now_utc + 1_000, now_ms + 1_000, Some(now_utc + 1_000));
    assert_eq!(ex.poll_timeout(), Some(now_ms + HELD_EXIT_RETRY_MS));
}

#[test]
fn a_reversal_on_a_holiday_holds_the_exit_and_misses_the_entry() {
    // Christmas Day, Friday 2026-12-25 10:00 UTC: closed all day, then the weekend.
    let now = 1_798_192_800;
    let bt = now - 2 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    let mut book = hours_book(fx());
    let out = book.run(&mut core, now, &[item(Action::ShortWeak, bt)]);
    assert_eq!(out[0].0, AckKind::Fail("MARKET_CLOSED".into()), "{out:?}");
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    // Held until Sunday 2026-12-27 22:00 UTC; the short entry is missed, never chased.
    assert_eq!(
        out[0].1.held.and_then(|c| c.until_ms),
        Some(1_798_408_800 * 1000)
    );
    let st = &core.policy.models[&key()];
    assert!(st.missed, "{st:?}");
    assert_eq!(core.held_exits().len(), 1);
    let note = core.notes.get(&key()).expect("note");
    assert!(
        note.contains("exit held") && note.contains("entry missed"),
        "{note}"
    );
    // At the open the release closes the long and enters nothing.
    let mut ex = exec_core(core);
    let open = 1_798_408_800;
    ex.release_held_exits(open, 0);
    let side = ex.side_mut(SideId::Live).expect("live");
    book.drive(side, open);
    assert_eq!(book.submitted, [format!("ot-EURUSD-M1-{open}-C")]);
    let st = &side.policy.models[&key()];
    assert!(st.real.is_none() && st.missed, "{st:?}");
}

#[test]
fn an_exit_in_the_index_daily_break_is_held_until_the_break_ends() {
    // Tuesday 2026-12-08 22:30 UTC = 17:30 New York: the daily break (17:00–18:00).
    let now = 1_796_769_000;
    let bt = now - 2 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), bt);
    let mut book = hours_book(index());
    let out = book.run(&mut core, now, &[item(Action::Wait, bt)]);
    assert_eq!(
        out[0].0,
        AckKind::WaitSync("MARKET_CLOSED".into()),
        "{out:?}"
    );
    // 18:00 New York = 23:00 UTC.
    assert_eq!(
        out[0].1.held.and_then(|c| c.until_ms),
        Some(1_796_770_800 * 1000)
    );
    assert!(book.submitted.is_empty());
    // Before the break (22:15 UTC = 17:15 NY is in it too; 21:59 UTC = 16:59 NY is open).
    let open_bt = now - 32 * M1;
    let mut core = core_at(Action::LongWeak, Some(Action::LongWeak), open_bt);
    let out = book.run(&mut core, open_bt + M1, &[item(Action::Wait, open_bt)]);
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
    assert_eq!(book.submitted.len(), 1);
}

#[test]
fn a_position_adopted_at_reconciliation_is_not_taken_for_a_held_exit() {
    // Killed between an entry's order and its answer: the journal's model state is still the
    // last signal's (WAIT, answered HOLD); reconciliation adopts the position. Real differs from
    // that state, but nothing was held: nothing is closed at start (the resent SIGNAL is a HOLD).
    let bt = SAT_NOON - 2 * M1;
    let mut rep = Replayed::default();
    rep.models.insert(
        key(),
        ModelState {
            target: Some(ActionName(Action::Wait)),
            last_bt: Some(bt),
            real: Some(RealPos {
                position_id: 7,
                action: ActionName(Action::LongWeak),
                volume: 100_000,
                price: 1.1,
            }),
            missed: false,
        },
    );
    rep.acks.insert(
        (key(), bt),
        format!("ACK|EURUSD|WAIT|HOLD|TF:M1|BT:{}", oracle_ipc::Iso(bt)),
    );
    let mut ex = exec_core(SideCore::new("live", &cfg(), &rep));
    assert!(ex.held_symbols().is_empty());
    assert!(ex.release_held_exits(SUN_2200, 0).is_empty());
    // The same state with the held exit's ACK journaled is one.
    rep.acks.insert(
        (key(), bt),
        format!(
            "ACK|EURUSD|WAIT|WAIT_SYNC|MARKET_CLOSED|TF:M1|BT:{}",
            oracle_ipc::Iso(bt)
        ),
    );
    let ex = exec_core(SideCore::new("live", &cfg(), &rep));
    assert_eq!(ex.held_symbols(), ["EURUSD"]);
}
