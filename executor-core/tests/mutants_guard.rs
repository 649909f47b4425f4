//! The side core's prop-firm guard (`side/guard.rs`): the behaviours that
//! `scripts/mutants --area guard` found unpinned by `tests/guard.rs` and `tests/side.rs`.
//! No runtime: a scripted book answers the side's actions; time is a parameter (UTC s, on a
//! Monday, 2021-03-01).

mod common;

use common::{Book, LOT, M15, T0, account, ftmo_cfg as cfg, key_on as key, side_at_t0};
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::journal::{Record, Replayed};
use oracle_executor_core::key::key_of;
use oracle_executor_core::operator::OperatorCommand;
use oracle_executor_core::policy::ModelState;
use oracle_executor_core::risk::Account;
use oracle_executor_core::side::{Item, SideCore};
use oracle_ipc::{Action, Timeframe};

/// The next midnight in Prague (CET, UTC+1): 2021-03-01T23:00Z.
const PRAGUE_MIDNIGHT: i64 = T0 + 23 * 3600;
const NOW: i64 = T0 + M15 + 60;

/// One lot of EURUSD at 1.1 in `action`'s direction, the model's target `target`.
fn held(position_id: u64, action: Action, target: Action) -> ModelState {
    common::held(position_id, action, target, LOT)
}

/// A side whose M15 model holds `m15` and whose H1 model holds `h1` (when given).
fn core_with(m15: Option<ModelState>, h1: Option<ModelState>) -> SideCore {
    let mut rep = Replayed::default();
    if let Some(st) = m15 {
        rep.models.insert(key(Timeframe::M15), st);
    }
    if let Some(st) = h1 {
        rep.models.insert(key(Timeframe::H1), st);
    }
    side_at_t0(&cfg(), &rep, &[key(Timeframe::M15), key(Timeframe::H1)])
}

fn long(id: u64) -> Option<ModelState> {
    Some(held(id, Action::LongWeak, Action::LongWeak))
}

fn short(id: u64) -> Option<ModelState> {
    Some(held(id, Action::ShortWeak, Action::ShortWeak))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn a_short_positions_floating_loss_is_its_entry_less_the_ask() {
    let mut core = core_with(short(7), None);
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    book.drive(&mut core, NOW);
    // Short one lot at 1.1, the ask at 1.11 (the bid far below): −1 000, not the bid's −500.
    let v = core
        .handle_quote((NOW + 1) * 1000, "EURUSD", 1.105, 1.11)
        .expect("evaluated: a position is open");
    assert!(close(v.daily.money, 4_000.0), "{v:?}");
    let st = core.guard_status("live");
    assert!(close(st.equity.expect("seen"), 99_000.0), "{st:?}");
    // Below the entry the short gains: ask 1.09 → +1 000.
    core.handle_quote((NOW + 2) * 1000, "EURUSD", 1.0899, 1.09);
    let st = core.guard_status("live");
    assert!(close(st.equity.expect("seen"), 101_000.0), "{st:?}");
}

#[test]
fn a_flatten_sells_a_long_and_buys_back_a_short() {
    let mut core = core_with(long(7), short(8));
    let mut book = Book::new(cfg());
    assert_eq!(core.start_flatten(NOW, None, "test"), 2);
    book.drive(&mut core, NOW);
    let mut sent = book.sent();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            (format!("ot-EURUSD-H1-{NOW}-F"), true),
            (format!("ot-EURUSD-M15-{NOW}-F"), false),
        ],
        "the short (H1) is bought back, the long (M15) sold"
    );
    assert_eq!(core.open_positions(None), 0);
}

#[test]
fn the_equity_between_reads_keeps_the_accounts_commissions_and_swaps() {
    let mut core = core_with(long(7), None);
    let mut book = Book::new(cfg());
    // A quote known before the read: the long is 10 pips down (−100).
    assert!(
        core.handle_quote(NOW * 1000, "EURUSD", 1.099, 1.09902)
            .is_none(),
        "no account read yet: nothing to estimate from"
    );
    // The broker's equity has 50 of swaps beyond the position's P&L.
    core.apply_risk(NOW, account(100_000.0, 99_850.0));
    book.drive(&mut core, NOW);
    let st = core.guard_status("live");
    assert_eq!(st.equity, Some(99_850.0), "the read's equity as it is");
    // 20 pips down: the equity moves by the P&L's change, the swaps stay.
    core.handle_quote((NOW + 1) * 1000, "EURUSD", 1.098, 1.09802)
        .expect("evaluated");
    let st = core.guard_status("live");
    assert!(close(st.balance.expect("seen"), 100_000.0), "{st:?}");
    assert!(close(st.equity.expect("seen"), 99_750.0), "{st:?}");
}

#[test]
fn a_close_filled_between_reads_moves_the_guards_balance_by_its_realised_pnl() {
    // M15 exits (long at 1.1, filled at 1.09: −1 000 realised); H1 stays long.
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    book.drive(&mut core, NOW);
    book.quote = (1.09, 1.09002);
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    core.handle_signals(
        NOW + 1,
        &cfg(),
        &[Item {
            key: m,
            tf: Timeframe::M15,
            target: Action::Wait,
            bt,
        }],
    );
    book.drive(&mut core, NOW + 1);
    core.take_batch_result().expect("the batch completes");
    assert_eq!(book.coids(), vec![format!("ot-EURUSD-M15-{bt}-C")]);
    assert_eq!(core.open_positions(None), 1);
    // The H1 long at the same quote: −1 000 floating on a balance 1 000 lower.
    core.handle_quote((NOW + 2) * 1000, "EURUSD", 1.09, 1.09002)
        .expect("evaluated");
    let st = core.guard_status("live");
    assert!(close(st.balance.expect("seen"), 99_000.0), "{st:?}");
    assert!(close(st.equity.expect("seen"), 98_000.0), "{st:?}");
}

#[test]
fn a_quote_that_is_not_a_price_is_ignored() {
    let mut core = core_with(long(7), None);
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    book.drive(&mut core, NOW);
    for (bid, ask) in [
        (0.0, 1.1),
        (1.1, 0.0),
        (-1.0, 1.1),
        (f64::INFINITY, 1.1),
        (1.1, f64::INFINITY),
        (f64::NAN, 1.1),
        (1.1, f64::NAN),
    ] {
        assert!(
            core.handle_quote((NOW + 1) * 1000, "EURUSD", bid, ask)
                .is_none(),
            "({bid}, {ask}) is not a price"
        );
    }
    assert!(core.halt_now().is_none() && core.open_positions(None) == 1);
    assert!(
        core.handle_quote((NOW + 2) * 1000, "EURUSD", 1.1, 1.10002)
            .is_some(),
        "a price is evaluated"
    );
}

#[test]
fn the_status_says_a_daily_halt_ends_at_midnight_and_a_max_loss_one_never_by_itself() {
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    // 2 lots × 220 pips = −4 400: 88% of the daily allowance.
    core.handle_quote((NOW + 1) * 1000, "EURUSD", 1.078, 1.07802);
    book.drive(&mut core, NOW + 1);
    let h = core.guard_status("live").halted.expect("halted");
    assert_eq!(h.reason, "HALTED_DAILY_LOSS");
    assert_eq!(h.by, "guard");
    assert_eq!(h.ends_ms, Some(PRAGUE_MIDNIGHT * 1000));

    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    // 2 lots × 410 pips = −8 200: 82% of the maximum loss.
    core.handle_quote((NOW + 1) * 1000, "EURUSD", 1.059, 1.05902);
    book.drive(&mut core, NOW + 1);
    let h = core.guard_status("live").halted.expect("halted");
    assert_eq!(h.reason, "HALTED_MAX_DRAWDOWN");
    assert_eq!(h.ends_ms, None, "only a person's resume ends it");
}

fn guard_records(book: &Book) -> usize {
    book.records()
        .iter()
        .filter(|r| matches!(r, Record::Guard { .. }))
        .count()
}

#[test]
fn a_read_that_only_moves_the_balance_journals_no_guard_state() {
    let mut core = core_with(None, None);
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    book.drive(&mut core, NOW);
    assert_eq!(guard_records(&book), 1, "the new guard is journaled");
    // Later the same day: a higher balance, no halt, no new day: nothing to journal.
    core.apply_risk(NOW + 60, account(100_100.0, 100_100.0));
    book.drive(&mut core, NOW + 60);
    assert_eq!(guard_records(&book), 1, "{:?}", book.records());
}

#[test]
fn a_flatten_sends_each_models_close_once_per_second_and_again_the_next_second() {
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    book.refuse_closes = true;
    assert_eq!(core.start_flatten(NOW, None, "test"), 2);
    book.drive(&mut core, NOW);
    assert_eq!(core.open_positions(None), 2, "the closes were refused");
    // The same second: their ids were sent, nothing goes out again.
    assert_eq!(core.start_flatten(NOW, None, "test"), 0);
    book.drive(&mut core, NOW);
    assert_eq!(book.submitted.len(), 2, "{:?}", book.submitted);
    // The next second: both closes again, with the new second's ids.
    book.refuse_closes = false;
    assert_eq!(core.start_flatten(NOW + 1, None, "test"), 2);
    book.drive(&mut core, NOW + 1);
    let mut sent = book.coids();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            format!("ot-EURUSD-H1-{NOW}-F"),
            format!("ot-EURUSD-H1-{}-F", NOW + 1),
            format!("ot-EURUSD-M15-{NOW}-F"),
            format!("ot-EURUSD-M15-{}-F", NOW + 1),
        ]
    );
    assert_eq!(core.open_positions(None), 0);
}

#[test]
fn a_model_whose_target_was_wait_is_not_missed_after_a_flatten() {
    // M15 wanted out already (its exit refused); H1 wants its long.
    let mut core = core_with(Some(held(7, Action::LongWeak, Action::Wait)), long(8));
    let mut book = Book::new(cfg());
    assert_eq!(core.start_flatten(NOW, None, "test"), 2);
    book.drive(&mut core, NOW);
    let m15 = &core.policy.models[&key(Timeframe::M15)];
    assert!(m15.real.is_none() && !m15.missed, "{m15:?}");
    let h1 = &core.policy.models[&key(Timeframe::H1)];
    assert!(h1.real.is_none() && h1.missed, "{h1:?}");
}

#[test]
fn a_read_between_a_batchs_exits_and_entries_counts_only_the_positions_still_open() {
    // M15 reverses (long → short), H1 stays long; the quotes are known (both −1 000).
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    book.quote = (1.09, 1.09002);
    core.handle_quote(NOW * 1000, "EURUSD", 1.09, 1.09002);
    // The broker's equity: the two positions' −2 000 and 30 of swaps.
    book.account = account(100_000.0, 97_970.0);
    let bt = T0 + M15;
    let items = [
        Item {
            key: key(Timeframe::M15),
            tf: Timeframe::M15,
            target: Action::ShortWeak,
            bt,
        },
        Item {
            key: key(Timeframe::H1),
            tf: Timeframe::H1,
            target: Action::LongWeak,
            bt,
        },
    ];
    core.handle_signals(NOW + 1, &cfg(), &items);
    // Once the exit filled (−1 000 realised), the broker's account is read again before the
    // entry: M15's position is closed though its model holds it until the batch completes.
    let fresh = account(99_000.0, 97_970.0);
    book.drive_with(&mut core, NOW + 1, &mut |_, acc: &mut Account| *acc = fresh);
    core.take_batch_result().expect("the batch completes");
    assert_eq!(
        book.coids(),
        vec![
            format!("ot-EURUSD-M15-{bt}-C"),
            format!("ot-EURUSD-M15-{bt}-O")
        ]
    );
    // At the same quote: 99 000, the swaps (−30), H1's −1 000, the new short's spread (−2).
    core.handle_quote((NOW + 2) * 1000, "EURUSD", 1.09, 1.09002)
        .expect("evaluated");
    let st = core.guard_status("live");
    assert!(close(st.balance.expect("seen"), 99_000.0), "{st:?}");
    assert!(close(st.equity.expect("seen"), 97_968.0), "{st:?}");
}

#[test]
fn the_account_read_after_a_flatten_is_the_guards_balance() {
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, book.account);
    book.drive(&mut core, NOW);
    // Halted (2 lots × 220 pips = −4 400): the flatten, then the account read it asks, with
    // the loss realised and 10 of commissions.
    core.handle_quote((NOW + 1) * 1000, "EURUSD", 1.078, 1.07802)
        .expect("evaluated");
    book.quote = (1.078, 1.07802);
    book.account = account(95_590.0, 95_590.0);
    book.drive(&mut core, NOW + 1);
    assert_eq!(core.open_positions(None), 0, "flattened");
    let st = core.guard_status("live");
    assert_eq!(st.balance, Some(95_590.0), "{st:?}");
    assert_eq!(st.equity, Some(95_590.0), "{st:?}");
}

fn guard_day_lows(book: &Book) -> Vec<(i64, Option<f64>)> {
    book.records()
        .into_iter()
        .filter_map(|r| match r {
            Record::GuardDay {
                day_start_ms,
                low_equity,
                ..
            } => Some((day_start_ms, low_equity)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_closed_guard_day_has_its_own_lowest_equity() {
    let mut core = core_with(None, None);
    let mut book = Book::new(cfg());
    core.apply_risk(NOW, account(100_000.0, 100_000.0));
    core.apply_risk(NOW + 60, account(100_000.0, 99_500.0));
    core.apply_risk(NOW + 120, account(100_000.0, 99_800.0));
    assert!(core.handle_guard_day_end(PRAGUE_MIDNIGHT * 1000));
    book.drive(&mut core, PRAGUE_MIDNIGHT);
    let next = core.guard.as_ref().expect("guard").next_day_start();
    assert_eq!(next, (PRAGUE_MIDNIGHT + 24 * 3600) * 1000);
    // The next day: 99 700, then 99 900.
    core.apply_risk(PRAGUE_MIDNIGHT + 60, account(100_000.0, 99_700.0));
    core.apply_risk(PRAGUE_MIDNIGHT + 120, account(100_000.0, 99_900.0));
    assert!(core.handle_guard_day_end(next));
    book.drive(&mut core, next / 1000);
    assert_eq!(
        guard_day_lows(&book),
        vec![
            ((T0 - 3600) * 1000, Some(99_500.0)),
            (PRAGUE_MIDNIGHT * 1000, Some(99_700.0)),
        ]
    );
}

#[test]
fn a_flatten_of_one_symbol_closes_only_that_symbols_positions() {
    let mut core = core_with(long(7), long(8));
    let mut book = Book::new(cfg());
    assert_eq!(core.start_flatten(NOW, Some("GBPUSD"), "test"), 0);
    book.drive(&mut core, NOW);
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
    assert_eq!(core.start_flatten(NOW, Some("EURUSD"), "test"), 2);
    book.drive(&mut core, NOW);
    assert_eq!(book.submitted.len(), 2, "{:?}", book.submitted);
    assert_eq!(core.open_positions(Some("EURUSD")), 0);
}

// The operator's commands (`operator.rs`).

#[test]
fn each_operator_command_reads_as_the_cli_spells_it() {
    let said: Vec<String> = [
        OperatorCommand::Halt { flatten: false },
        OperatorCommand::Halt { flatten: true },
        OperatorCommand::Flatten {
            symbol: Some("EURUSD".into()),
        },
        OperatorCommand::Flatten { symbol: None },
        OperatorCommand::Resume,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        said,
        [
            "halt",
            "halt --flatten",
            "flatten EURUSD",
            "flatten all",
            "resume"
        ]
    );
}

#[test]
fn an_operator_answer_names_the_side_and_a_refusal_names_the_command() {
    let mut exec: ExecutorCore = ExecutorCore::new(
        cfg(),
        Some(core_with(long(7), None)),
        None,
        Default::default(),
    );
    let said = exec
        .handle_operator(
            NOW * 1000,
            &OperatorCommand::Halt { flatten: false },
            "unix:alice",
        )
        .expect("halted");
    assert!(
        said.contains("live: halted (1 position(s) left open)"),
        "{said}"
    );
    assert_eq!(exec.guard_status().expect("a side").side, "live");
    let err = exec
        .handle_operator(
            NOW * 1000,
            &OperatorCommand::Flatten {
                symbol: Some("XAUUSD".into()),
            },
            "unix:alice",
        )
        .expect_err("not a symbol of the config");
    assert!(err.starts_with("flatten XAUUSD: refused"), "{err}");

    let mut exec: ExecutorCore = ExecutorCore::new(
        cfg(),
        None,
        Some(core_with(long(7), None)),
        Default::default(),
    );
    let said = exec
        .handle_operator(
            NOW * 1000,
            &OperatorCommand::Flatten { symbol: None },
            "unix:bob",
        )
        .expect("flattened");
    assert_eq!(said, "flatten all: paper: closing 1 position(s)");
    assert_eq!(exec.guard_status().expect("a side").side, "paper");
}

#[test]
fn a_flatten_of_a_configured_symbol_without_positions_or_of_a_held_unconfigured_one_is_done() {
    // EURUSD is configured: nothing open on it is no refusal.
    let mut exec: ExecutorCore =
        ExecutorCore::new(cfg(), Some(core_with(None, None)), None, Default::default());
    let said = exec
        .handle_operator(
            NOW * 1000,
            &OperatorCommand::Flatten {
                symbol: Some("EURUSD".into()),
            },
            "unix:alice",
        )
        .expect("nothing to close is not a refusal");
    assert_eq!(said, "flatten EURUSD: live: closing 0 position(s)");
    // GBPUSD is not configured (any more) but a model still holds it: it can be closed.
    let mut rep = Replayed::default();
    rep.models.insert(
        key_of("GBPUSD", Timeframe::M15).unwrap(),
        held(9, Action::LongWeak, Action::LongWeak),
    );
    let core = SideCore::new("live", &cfg(), &rep);
    let mut exec: ExecutorCore = ExecutorCore::new(cfg(), Some(core), None, Default::default());
    let said = exec
        .handle_operator(
            NOW * 1000,
            &OperatorCommand::Flatten {
                symbol: Some("GBPUSD".into()),
            },
            "unix:alice",
        )
        .expect("a held symbol can be flattened");
    assert_eq!(said, "flatten GBPUSD: live: closing 1 position(s)");
}

/// What the shell hands the side at start is what it reads back: no currencies on a paper side
/// (the P&L as quoted), the account's deposit currency and the symbols' assets on a live one.
#[test]
fn a_side_gives_back_the_currencies_it_was_handed_and_none_when_it_was_handed_none() {
    let mut core = SideCore::new("live", &cfg(), &Replayed::default());
    assert!(
        core.currencies().is_none(),
        "no currencies before the shell hands any"
    );
    core.set_currencies(Some(oracle_executor_core::currency::Currencies {
        deposit: "EUR".into(),
        assets: [("EURUSD".to_string(), ("EUR".to_string(), "USD".to_string()))].into(),
    }));
    let c = core.currencies().expect("handed at start");
    assert_eq!(c.deposit, "EUR");
    assert_eq!(c.assets["EURUSD"], ("EUR".to_string(), "USD".to_string()));
    core.set_currencies(None);
    assert!(core.currencies().is_none());
}
