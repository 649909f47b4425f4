//! The prop-firm guard and a person's commands in the executor core, with no runtime: a
//! scripted book answers the side's actions on a plain integer clock (UTC), quotes move the
//! equity between two bars, and the trace of actions is what the tests check.

mod common;

use std::collections::HashMap;

use common::{
    Book, LOT, M15, T0, ftmo_cfg as cfg, held, item_for as item, key_on as key, side_at_t0,
};

use oracle_executor_core::currency::Currencies;
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::gather::Timer;
use oracle_executor_core::journal::{Record, Replayed};
use oracle_executor_core::key::KeyText;
use oracle_executor_core::operator::{GuardStatus, OperatorCommand};
use oracle_executor_core::policy::ModelState;
use oracle_executor_core::propfirm::{Guard, Preset, Rules};
use oracle_executor_core::risk::Account;
use oracle_executor_core::side::{BatchResult, SideCore};
use oracle_ipc::{Action, Timeframe};

/// The next midnight in Prague (CET, UTC+1): 2021-03-01T23:00Z.
const PRAGUE_MIDNIGHT: i64 = T0 + 23 * 3600;

/// Long one lot at 1.1.
fn long_held(position_id: u64) -> ModelState {
    held(position_id, Action::LongWeak, Action::LongWeak, LOT)
}

/// A side on the FTMO config with the M15 and H1 models' bars `T0` and `T0 + M15` streamed.
fn core_from(rep: &Replayed) -> SideCore {
    side_at_t0(&cfg(), rep, &[key(Timeframe::M15), key(Timeframe::H1)])
}

/// Two models (M15 and H1), each long one lot of EURUSD at 1.1.
fn two_longs() -> SideCore {
    let mut rep = Replayed::default();
    rep.models.insert(key(Timeframe::M15), long_held(7));
    rep.models.insert(key(Timeframe::H1), long_held(8));
    core_from(&rep)
}

/// Executor time a minute after the bar `T0 + M15` closed (its account read).
const NOW: i64 = T0 + M15 + 60;

/// [`two_longs`] and a fresh book; the bar's account read at [`NOW`] starts the guard (anchor
/// 100 000, daily floor 95 000).
fn guarded() -> (SideCore, Book) {
    let mut core = two_longs();
    let book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    (core, book)
}

/// [`guarded`], then EURUSD at 1.078 a second later (2 lots × 220 pips = −4 400, past the daily
/// floor): the daily halt, its flatten driven. With `realised`, the broker's balance and equity
/// once the flatten's closes filled (the loss realised: the side asks the account right after
/// the flatten, so the guard's balance at midnight is this one).
fn daily_halt(realised: Option<f64>) -> (SideCore, Book) {
    let (mut core, mut book) = guarded();
    core.handle_quote((NOW + 1) * 1000, "EURUSD", 1.078, 1.07802);
    if let Some(money) = realised {
        book.account.balance = money;
        book.account.equity = money;
    }
    book.drive(&mut core, NOW + 1);
    (core, book)
}

fn reason(out: &BatchResult) -> Option<String> {
    out[0].2.as_ref().map(|r| r.code())
}

fn replay(book: &Book) -> Replayed {
    Replayed::from_bytes(&book.journal)
}

#[test]
fn a_floating_loss_between_two_bars_past_80_percent_closes_every_position_and_halts() {
    // The bar's account read: the guard starts (anchor 100 000, daily floor 95 000).
    let (mut core, mut book) = guarded();
    let now = NOW;
    book.drive(&mut core, now);
    assert!(core.halt_now().is_none());
    // Between two bars: 2 lots × 100 pips = −2 000 (40% of the daily allowance): nothing.
    let v = core
        .handle_quote((now + 10) * 1000, "EURUSD", 1.09, 1.09002)
        .expect("evaluated: a position is open on EURUSD");
    assert!((v.daily.money - 3_000.0).abs() < 1e-6, "{v:?}");
    assert!(
        v.act.is_none() && core.poll_action().is_none(),
        "no order at 40%"
    );
    // A quote of a symbol without a position does not evaluate the guard.
    assert!(
        core.handle_quote((now + 15) * 1000, "GBPUSD", 0.5, 0.6)
            .is_none()
    );
    // 2 lots × 210 pips = −4 200: 84% of the 5 000 allowance, past the 80% share.
    let at = now + 20;
    let v = core
        .handle_quote(at * 1000, "EURUSD", 1.079, 1.07902)
        .expect("evaluated");
    assert_eq!(v.act.map(|l| l.code()), Some("HALTED_DAILY_LOSS"));
    book.quote = (1.079, 1.07902);
    book.drive(&mut core, at);
    let (f1, f2) = (
        format!("ot-EURUSD-H1-{at}-F"),
        format!("ot-EURUSD-M15-{at}-F"),
    );
    let t = &book.trace;
    assert_eq!(
        t.as_slice(),
        [
            format!("sync {f1},{f2}"),
            format!("submit {f1}"),
            format!("submit {f2}"),
            "await".to_string(),
            "account".to_string()
        ],
        "every position closed, its intent synced first, then the account read: {t:?}"
    );
    assert_eq!(core.open_positions(None), 0, "flat");
    for k in [key(Timeframe::M15), key(Timeframe::H1)] {
        let st = &core.policy.models[&k];
        assert!(
            st.real.is_none() && st.missed,
            "{}: flat, waits for its next transition",
            k.model_name()
        );
    }
    assert_eq!(
        core.halt_now().map(|h| h.code()),
        Some("HALTED_DAILY_LOSS"),
        "halted"
    );
    // The halt and the flat models are in the journal.
    let rep = replay(&book);
    assert!(rep.guard.as_ref().and_then(|g| g.halted).is_some());
    assert!(rep.models.values().all(|m| m.real.is_none()));
    assert!(rep.pending.is_empty(), "every close has its outcome");
}

#[test]
fn entries_are_refused_while_halted_and_exits_go_on() {
    // A guard halted by the daily loss an hour ago (restored), with both models still long
    // (their flatten was refused by the broker).
    let now = T0 + M15 + 60;
    let rules = Rules::from_risk(&cfg().risk).expect("a preset");
    let mut g = Guard::new(rules, 100_000.0, (now - 3600) * 1000).expect("guard");
    g.on_equity((now - 3600) * 1000, 100_000.0, 95_500.0)
        .expect("update");
    assert!(g.halted().is_some());
    let mut rep = Replayed {
        guard: Some(g.state().clone()),
        ..Replayed::default()
    };
    rep.models.insert(key(Timeframe::M15), long_held(7));
    let mut core = core_from(&rep);
    let mut book = Book::new(cfg());
    book.account.equity = 95_500.0;
    book.refuse_closes = true;
    let bt = T0 + M15;
    let m = key(Timeframe::M15);
    // A reversal: the exit goes out (and the guard's flatten after the batch), the entry is
    // refused with the limit's code.
    let out = book.run(&mut core, now, &[item(&m, Action::ShortWeak, bt)]);
    assert_eq!(reason(&out).as_deref(), Some("BROKER_MARKET_MOVED"));
    let close = format!("ot-EURUSD-M15-{bt}-C");
    assert!(
        book.submitted.contains(&close),
        "the exit went out: {:?}",
        book.trace
    );
    assert!(
        book.submitted.contains(&format!("ot-EURUSD-M15-{now}-F")),
        "the guard's flatten went out after the batch: {:?}",
        book.trace
    );
    assert!(
        !book.submitted.iter().any(|c| c.ends_with("-O")),
        "no entry while halted: {:?}",
        book.submitted
    );
    // The closes are filled now: the reversal's exit fills, its entry is refused.
    book.refuse_closes = false;
    book.clear_sent();
    let bt2 = bt + M15;
    core.policy.handle_bar(&m, bt2);
    let out = book.run(
        &mut core,
        bt2 + M15 + 2,
        &[item(&m, Action::ShortStrong, bt2)],
    );
    assert!(
        book.submitted.iter().any(|c| c.ends_with("-C")),
        "the exit: {:?}",
        book.submitted
    );
    assert_eq!(reason(&out).as_deref(), Some("HALTED_DAILY_LOSS"));
    assert!(!book.submitted.iter().any(|c| c.ends_with("-O")));
    assert_eq!(core.open_positions(None), 0);
}

#[test]
fn a_daily_halt_ends_at_the_next_prague_midnight() {
    let (mut core, mut book) = daily_halt(None);
    assert_eq!(core.halt_now().map(|h| h.code()), Some("HALTED_DAILY_LOSS"));
    let g = core.guard.as_ref().expect("guard");
    assert_eq!(
        g.next_day_start(),
        PRAGUE_MIDNIGHT * 1000,
        "23:00 UTC in winter"
    );
    // The flatten realised the loss: the account is 4 400 down.
    book.account = Account {
        balance: 95_600.0,
        equity: 95_600.0,
        free_margin: 95_600.0,
    };
    // A second before midnight: still halted; a fresh transition's entry is refused.
    core.apply_risk(PRAGUE_MIDNIGHT - 1, book.account);
    assert!(core.halt_now().is_some(), "halted until midnight");
    let m = key(Timeframe::M15);
    let bt = PRAGUE_MIDNIGHT - 2 * M15;
    core.policy.handle_bar(&m, bt - M15);
    core.policy.handle_bar(&m, bt);
    if let Some(st) = core.policy.models.get_mut(&m) {
        st.last_bt = Some(bt - M15);
    }
    let out = book.run(&mut core, bt + M15 + 2, &[item(&m, Action::ShortWeak, bt)]);
    assert_eq!(
        reason(&out).as_deref(),
        Some("HALTED_DAILY_LOSS"),
        "{out:?}"
    );
    // Midnight in Prague (the core's day-end input): the halt ends, the day's anchor is the
    // balance then, and it is journaled.
    assert!(core.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000));
    assert!(core.halt_now().is_none(), "the daily halt ends at midnight");
    book.drive(&mut core, PRAGUE_MIDNIGHT);
    let rep = replay(&book);
    let st = rep.guard.expect("journaled");
    assert_eq!(st.halted, None);
    assert_eq!(st.day_anchor, Some(95_600.0));
    assert_eq!(st.day_start_ms, PRAGUE_MIDNIGHT * 1000);
    // The next transition enters.
    let bt = bt + M15;
    core.policy.handle_bar(&m, bt);
    book.clear_sent();
    let out = book.run(&mut core, bt + M15 + 2, &[item(&m, Action::LongStrong, bt)]);
    assert_eq!(reason(&out), None, "{out:?}");
    assert!(
        book.submitted.iter().any(|c| c.ends_with("-O")),
        "{:?}",
        book.trace
    );
}

#[test]
fn a_daily_halt_also_ends_at_the_first_account_read_after_midnight() {
    // The broker's account once the flatten's closes filled: the loss realised. The side asks
    // it right after the flatten, so the guard's balance at midnight is this one.
    let (mut core, book) = daily_halt(Some(95_600.0));
    assert_eq!(
        book.trace.last().map(String::as_str),
        Some("account"),
        "{:?}",
        book.trace
    );
    assert!(core.halt_now().is_some());
    core.apply_risk(PRAGUE_MIDNIGHT, book.account);
    assert!(
        core.halt_now().is_none(),
        "lifted by the first read of the new day"
    );
}

#[test]
fn a_max_loss_halt_survives_a_restart_and_ends_only_by_resume() {
    let (mut core, mut book) = guarded();
    let now = NOW;
    // 2 lots × 410 pips = −8 200: 82% of the maximum loss's 10 000 (and past the daily floor).
    let v = core
        .handle_quote((now + 5) * 1000, "EURUSD", 1.059, 1.05902)
        .expect("evaluated");
    assert_eq!(v.act.map(|l| l.code()), Some("HALTED_MAX_DRAWDOWN"));
    book.drive(&mut core, now + 5);
    assert_eq!(core.open_positions(None), 0, "flattened");
    // Restart: the journal's replay brings the halt back.
    let rep = replay(&book);
    let mut core = core_from(&rep);
    assert_eq!(
        core.halt_now().map(|h| h.code()),
        Some("HALTED_MAX_DRAWDOWN"),
        "the halt survives the restart"
    );
    // Midnight does not end it, nor does an account back above the floors.
    book.account = Account {
        balance: 99_000.0,
        equity: 99_000.0,
        free_margin: 99_000.0,
    };
    core.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000);
    core.apply_risk(PRAGUE_MIDNIGHT + 60, book.account);
    assert_eq!(
        core.halt_now().map(|h| h.code()),
        Some("HALTED_MAX_DRAWDOWN")
    );
    book.drive(&mut core, PRAGUE_MIDNIGHT + 60);
    // A person resumes: lifted, journaled (a restart then is not halted).
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    let said = exec
        .handle_operator(
            (PRAGUE_MIDNIGHT + 120) * 1000,
            &OperatorCommand::Resume,
            "unix:alice",
        )
        .expect("resumed");
    assert!(said.contains("HALTED_MAX_DRAWDOWN"), "{said}");
    let core = exec.live.as_mut().expect("live");
    assert!(core.halt_now().is_none());
    book.drive(core, PRAGUE_MIDNIGHT + 120);
    let rep = replay(&book);
    assert_eq!(rep.guard.as_ref().and_then(|g| g.halted), None);
    assert!(
        core_from(&rep).halt_now().is_none(),
        "a restart after resume"
    );
}

#[test]
fn an_operator_halt_refuses_entries_is_journaled_with_its_origin_and_survives_a_restart() {
    let mut rep = Replayed::default();
    rep.models.insert(key(Timeframe::M15), long_held(7));
    let core = core_from(&rep);
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    let now = T0 + M15 + 60;
    let said = exec
        .handle_operator(
            now * 1000,
            &OperatorCommand::Halt { flatten: false },
            "unix:alice",
        )
        .expect("halted");
    assert!(
        said.contains("HALTED_OPERATOR") && said.contains("1 position(s) left open"),
        "{said}"
    );
    let mut book = Book::new(cfg());
    let core = exec.live.as_mut().expect("live");
    book.drive(core, now);
    assert!(
        book.submitted.is_empty(),
        "a halt without --flatten closes nothing"
    );
    let recs = book.records();
    assert!(
        recs.iter().any(|r| matches!(r, Record::Operator { origin, ok: true, command: OperatorCommand::Halt { flatten: false }, .. } if origin == "unix:alice")),
        "journaled with its origin: {recs:?}"
    );
    // A restart: still halted; a reversal's exit goes out, its entry is refused.
    let mut rep = replay(&book);
    assert!(rep.operator_halt.is_some(), "the replay has the halt");
    rep.models.insert(key(Timeframe::M15), long_held(7));
    let mut core = core_from(&rep);
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let out = book.run(&mut core, bt + M15 + 2, &[item(&m, Action::ShortWeak, bt)]);
    assert_eq!(reason(&out).as_deref(), Some("HALTED_OPERATOR"), "{out:?}");
    assert_eq!(book.submitted, vec![format!("ot-EURUSD-M15-{bt}-C")]);
    // Resume: the next transition enters.
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    exec.handle_operator((now + 60) * 1000, &OperatorCommand::Resume, "unix:bob")
        .expect("resumed");
    let core = exec.live.as_mut().expect("live");
    book.drive(core, now + 60);
    let bt2 = bt + M15;
    core.policy.handle_bar(&m, bt2);
    book.clear_sent();
    let out = book.run(core, bt2 + M15 + 2, &[item(&m, Action::LongWeak, bt2)]);
    assert_eq!(reason(&out), None);
    assert_eq!(book.submitted, vec![format!("ot-EURUSD-M15-{bt2}-O")]);
    // Nothing halted: a second resume is refused, and says so.
    let err = exec
        .handle_operator((now + 90) * 1000, &OperatorCommand::Resume, "unix:bob")
        .expect_err("nothing to resume");
    assert!(err.contains("nothing is halted"), "{err}");
}

#[test]
fn flatten_closes_the_positions_through_poll_action_and_refuses_an_unknown_symbol() {
    let core = two_longs();
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    let now = T0 + M15 + 60;
    let err = exec
        .handle_operator(
            now * 1000,
            &OperatorCommand::Flatten {
                symbol: Some("XAUUSD".into()),
            },
            "unix:alice",
        )
        .expect_err("not a symbol of the config");
    assert!(err.contains("\"XAUUSD\""), "names the symbol: {err}");
    let said = exec
        .handle_operator(
            now * 1000,
            &OperatorCommand::Flatten { symbol: None },
            "unix:alice",
        )
        .expect("flattened");
    assert!(said.contains("closing 2 position(s)"), "{said}");
    let mut book = Book::new(cfg());
    let core = exec.live.as_mut().expect("live");
    book.drive(core, now);
    assert_eq!(
        book.submitted,
        vec![
            format!("ot-EURUSD-H1-{now}-F"),
            format!("ot-EURUSD-M15-{now}-F")
        ]
    );
    assert_eq!(core.open_positions(None), 0);
    assert!(core.halt_now().is_none(), "a flatten does not halt");
    let recs = book.records();
    let ops: Vec<bool> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Operator { ok, .. } => Some(*ok),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        vec![false, true],
        "the refused command is journaled too"
    );
    let st = exec.guard_status().expect("a side");
    assert_eq!(st.preset.as_deref(), Some("ftmo-2step"));
    assert_eq!(st.open_positions, 0);
}

#[test]
fn the_status_shows_the_headroom_to_each_limit_in_money_and_percent() {
    let core = two_longs();
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    let now = T0 + M15 + 60;
    let acc = Account {
        balance: 100_000.0,
        equity: 100_000.0,
        free_margin: 100_000.0,
    };
    exec.live.as_mut().expect("live").apply_risk(now, acc);
    exec.handle_quote((now + 1) * 1000, "EURUSD", 1.09, 1.09002);
    let st = exec.guard_status().expect("status");
    let d = st.daily.expect("daily");
    assert!((d.money - 3_000.0).abs() < 1e-6 && (d.pct_of_initial - 3.0).abs() < 1e-9);
    assert!((d.share_used - 0.4).abs() < 1e-9);
    let m = st.max_loss.expect("max");
    assert!((m.money - 8_000.0).abs() < 1e-6 && (m.pct_of_initial - 8.0).abs() < 1e-9);
    assert_eq!(st.equity, Some(98_000.0));
    assert_eq!(st.trading_days, Some(0));
    assert_eq!(st.min_trading_days, Some(4));
    assert_eq!(st.next_day_start_ms, Some(PRAGUE_MIDNIGHT * 1000));
    assert!(st.halted.is_none());
    let _ = Preset::Ftmo2Step;
}

#[test]
fn the_guard_day_timer_fires_at_the_prague_midnight_and_ends_a_daily_halt() {
    let (core, _book) = daily_halt(None);
    let now = NOW;
    assert!(core.halt_now().is_some());
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, HashMap::new());
    // The timers' clock is the run's own (here 5 000 ms at `now + 2`): the deadline is the
    // Prague midnight on it.
    let mono = 5_000;
    exec.arm_guard_day((now + 2) * 1000, mono);
    let at = mono + (PRAGUE_MIDNIGHT - now - 2) * 1000;
    assert_eq!(exec.poll_timeout(), Some(at));
    assert!(exec.handle_timeout(at - 1).is_empty());
    assert_eq!(exec.handle_timeout(at), [Timer::GuardDay]);
    exec.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000);
    let core = exec.live.as_mut().expect("live");
    assert!(core.halt_now().is_none(), "the daily halt ends at midnight");
    // The next day's deadline.
    exec.arm_guard_day(PRAGUE_MIDNIGHT * 1000, at);
    assert_eq!(exec.poll_timeout(), Some(at + 24 * 3600 * 1000));
}

/// The guard's closed days in the journal (`Record::GuardDay`).
fn guard_days(book: &Book) -> Vec<Record> {
    book.records()
        .into_iter()
        .filter(|r| matches!(r, Record::GuardDay { .. }))
        .collect()
}

/// Halted by a floating loss (two lots down 4 400), flattened at a balance of 95 600, then
/// 95 700 a minute before midnight: the halt's equity, the day's lowest.
fn a_halted_day() -> (SideCore, Book, f64) {
    let (mut core, mut book) = daily_halt(Some(95_600.0));
    let halt = core
        .guard
        .as_ref()
        .and_then(|g| g.state().halted)
        .expect("halted");
    assert!(halt.equity < 96_000.0, "{halt:?}");
    book.account.equity = 95_700.0;
    core.apply_risk(PRAGUE_MIDNIGHT - 60, book.account);
    book.drive(&mut core, PRAGUE_MIDNIGHT - 60);
    assert!(
        guard_days(&book).is_empty(),
        "no day closed before midnight"
    );
    (core, book, halt.equity.min(95_600.0))
}

/// The day of T0 in Prague: 2021-02-28T23:00Z.
const DAY0_MS: i64 = (T0 - 3600) * 1000;

/// The journal's record of [`a_halted_day`] once closed: its anchor and floor, its lowest
/// equity `low`, the flattened balance at its end.
fn halted_day_record(low: f64) -> Record {
    Record::GuardDay {
        day_start_ms: DAY0_MS,
        anchor: Some(100_000.0),
        floor: Some(95_000.0),
        low_equity: Some(low),
        eod_balance: 95_600.0,
    }
}

#[test]
fn the_guard_day_end_journals_the_day_once_with_its_floor_and_lowest_equity() {
    let (mut core, mut book, low) = a_halted_day();
    assert!(core.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000));
    book.drive(&mut core, PRAGUE_MIDNIGHT);
    // The new day's lower equity is the new day's, not the closed one's.
    book.account.equity = 95_500.0;
    core.apply_risk(PRAGUE_MIDNIGHT + 60, book.account);
    book.drive(&mut core, PRAGUE_MIDNIGHT + 60);
    assert_eq!(guard_days(&book), [halted_day_record(low)]);
}

#[test]
fn the_first_update_past_midnight_journals_the_closed_day_when_no_timer_fired() {
    let (mut core, mut book, low) = a_halted_day();
    book.account.equity = 95_500.0;
    core.apply_risk(PRAGUE_MIDNIGHT + 60, book.account);
    book.drive(&mut core, PRAGUE_MIDNIGHT + 60);
    // The timer firing late closes nothing more.
    assert!(!core.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000 + 61_000));
    book.drive(&mut core, PRAGUE_MIDNIGHT + 61);
    assert_eq!(guard_days(&book), [halted_day_record(low)]);
}

/// [`two_longs`] on an account in `deposit`, read at the entry's quote, then EURUSD 100 pips
/// down (1.09 / 1.09002: 2 lots × −1 000 USD): the guard's status.
fn two_longs_100_pips_down_on_an_account_in(deposit: &str) -> GuardStatus {
    let mut core = two_longs();
    core.set_currencies(Some(Currencies {
        deposit: deposit.into(),
        assets: [("EURUSD".to_string(), ("EUR".to_string(), "USD".to_string()))].into(),
    }));
    let now = NOW;
    core.handle_quote(now * 1000, "EURUSD", 1.1, 1.10002);
    core.apply_risk(now, common::account(100_000.0, 100_000.0));
    core.handle_quote((now + 1) * 1000, "EURUSD", 1.09, 1.09002)
        .expect("evaluated");
    core.guard_status("live")
}

#[test]
fn on_a_eur_account_a_eurusd_loss_between_reads_is_converted_at_the_eurusd_quote() {
    let st = two_longs_100_pips_down_on_an_account_in("EUR");
    // −2 000 USD in euros at EURUSD's mid 1.09001.
    let want = 100_000.0 - 2_000.0 / 1.09001;
    let equity = st.equity.expect("estimated");
    assert!((equity - want).abs() < 1e-6, "{equity} != {want}");
    assert_eq!(st.currency.as_deref(), Some("EUR"));
    assert!(st.approximate.is_empty(), "{st:?}");
}

#[test]
fn without_a_conversion_quote_the_loss_moves_the_equity_as_quoted_and_the_status_says_approximate()
{
    // A GBP account: no traded symbol converts dollars to pounds.
    let st = two_longs_100_pips_down_on_an_account_in("GBP");
    assert!(
        (st.equity.expect("estimated") - 98_000.0).abs() < 1e-6,
        "{st:?}"
    );
    assert_eq!(st.currency.as_deref(), Some("GBP"));
    assert_eq!(st.approximate, vec!["EURUSD".to_string()]);
}
