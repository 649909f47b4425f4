//! Reconciliation at start and after a reconnect, on the edges the mutation run
//! (`scripts/mutants --area reconciliation`) found unpinned: what a lookup asks the broker, what a
//! found or missing close does, when a vanished position leaves the entry missed, which labelled
//! positions are ours to explain, and how a position is adopted by label when the broker does not
//! echo the client order id. No runtime: the side core's actions are answered in the test.

use oracle_executor_core::broker::{BrokerPosition, OrderLookup, OrderResult};
use oracle_executor_core::key::{KeyText, key_of};
mod common;

use common::plain_cfg as cfg;
use oracle_executor_core::journal::{Op, Record, Replayed};
use oracle_executor_core::policy::{ActionName, ModelState, RealPos, StreamKey};
use oracle_executor_core::side::{SideAction, SideCore, lookup_of};
use oracle_ipc::Action;

/// An intent's time (Unix seconds, a Monday).
const TS: i64 = 1_614_557_702;

fn m15() -> StreamKey {
    key_of("EURUSD", oracle_ipc::Timeframe::M15).unwrap()
}

fn h1() -> StreamKey {
    key_of("EURUSD", oracle_ipc::Timeframe::H1).unwrap()
}

fn intent(m: &StreamKey, coid: &str, op: Op, buy: bool, volume: i64, pid: Option<u64>) -> Record {
    Record::Intent {
        ts: TS,
        coid: coid.into(),
        model: *m,
        op,
        symbol: "EURUSD".into(),
        buy,
        action: ActionName(if buy {
            Action::LongWeak
        } else {
            Action::ShortWeak
        }),
        volume,
        position_id: pid,
        bt: TS - 902,
    }
}

fn state(target: Action, real: Option<u64>) -> ModelState {
    ModelState {
        target: Some(ActionName(target)),
        last_bt: Some(TS - 1802),
        real: real.map(|position_id| RealPos {
            position_id,
            action: ActionName(Action::LongWeak),
            volume: 100_000,
            price: 1.1,
        }),
        missed: false,
    }
}

fn position(id: u64, label: &str, coid: &str, buy: bool, volume: i64) -> BrokerPosition {
    BrokerPosition {
        position_id: id,
        symbol: "EURUSD".into(),
        label: label.into(),
        client_order_id: coid.into(),
        buy,
        volume,
        price: 1.2,
    }
}

/// The journal's view: model states, intents (all remembered), pending ones, filled ones.
struct Journal {
    rep: Replayed,
}

impl Journal {
    fn new() -> Self {
        Journal {
            rep: Replayed::default(),
        }
    }
    fn model(mut self, m: &StreamKey, s: ModelState) -> Self {
        self.rep.models.insert(*m, s);
        self
    }
    /// An intent sent and not answered (pending at the restart).
    fn pending(self, r: Record) -> Self {
        self.intent(r, true, false)
    }
    /// An intent answered with no fill (remembered, not pending).
    fn settled(self, r: Record) -> Self {
        self.intent(r, false, false)
    }
    /// An intent whose fill is recorded.
    fn filled(self, r: Record) -> Self {
        self.intent(r, false, true)
    }
    fn intent(mut self, r: Record, pending: bool, filled: bool) -> Self {
        let Record::Intent { coid, .. } = &r else {
            unreachable!()
        };
        if pending {
            self.rep.pending.insert(coid.clone(), r.clone());
        }
        if filled {
            self.rep.filled.insert(coid.clone());
        }
        self.rep.intents.insert(coid.clone(), r);
        self
    }
    fn core(&self) -> SideCore {
        SideCore::new("live", &cfg(), &self.rep)
    }
}

/// Reconciles against `positions`, each lookup answered by `found`; returns the lookups asked
/// and the records journaled.
fn reconcile(
    core: &mut SideCore,
    positions: Vec<BrokerPosition>,
    mut found: impl FnMut(&OrderLookup) -> Result<Option<OrderResult>, String>,
) -> (Vec<OrderLookup>, Vec<Record>) {
    core.handle_reconciled(positions);
    let (mut asked, mut journaled) = (Vec::new(), Vec::new());
    while let Some(a) = core.poll_action() {
        match a {
            SideAction::LookUp(l) => {
                assert!(core.reconciling(), "a lookup is in flight");
                let answer = found(&l);
                asked.push(l);
                core.handle_lookup(answer);
            }
            SideAction::Journal { record, .. } => journaled.push(record),
            other => panic!("reconciliation sends nothing else: {other:?}"),
        }
    }
    assert!(!core.reconciling(), "done");
    (asked, journaled)
}

fn outcome_of<'a>(journaled: &'a [Record], coid: &str) -> &'a Record {
    journaled
        .iter()
        .find(|r| matches!(r, Record::Outcome { coid: c, .. } if c == coid))
        .unwrap_or_else(|| panic!("no outcome for {coid}: {journaled:?}"))
}

#[test]
fn a_lookup_asks_for_the_intents_order_from_a_minute_before_it_and_names_the_closed_position() {
    let m = m15();
    let open = lookup_of(&intent(&m, "o-1", Op::Open, true, 300_000, None)).expect("an intent");
    assert_eq!(
        open,
        OrderLookup {
            client_order_id: "o-1".into(),
            label: m.label(),
            symbol: "EURUSD".into(),
            buy: true,
            volume: 300_000,
            closes: None,
            since: TS - 60,
        }
    );
    let close =
        lookup_of(&intent(&m, "c-1", Op::Close, false, 100_000, Some(7))).expect("an intent");
    assert_eq!(close.closes, Some(7));
    assert_eq!(close.since, TS - 60);
    assert!(!close.buy);
    // Not an intent: nothing to look up.
    assert_eq!(
        lookup_of(&Record::Model {
            model: m,
            state: state(Action::Wait, None)
        }),
        None
    );
}

#[test]
fn reconciling_is_true_while_a_lookup_is_in_flight_and_false_after() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::Wait, None))
        .pending(intent(&m, "o-1", Op::Open, true, 100_000, None))
        .core();
    assert!(!core.reconciling());
    core.handle_reconciled(vec![]);
    assert!(core.reconciling(), "waiting for the lookup of o-1");
    assert!(matches!(core.poll_action(), Some(SideAction::LookUp(_))));
    core.handle_lookup(Ok(None));
    assert!(!core.reconciling());
}

#[test]
fn a_close_sent_before_the_restart_and_found_filled_leaves_the_model_flat() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::Wait, Some(7)))
        .pending(intent(&m, "c-7", Op::Close, false, 100_000, Some(7)))
        .core();
    let (asked, journaled) = reconcile(&mut core, vec![], |_| {
        Ok(Some(OrderResult::Filled {
            position_id: 7,
            price: 1.1,
            volume: 100_000,
        }))
    });
    assert_eq!(asked.len(), 1);
    assert_eq!(core.policy.models[&m].real, None);
    assert!(
        !core.policy.models[&m].missed,
        "an exit found done is no missed entry"
    );
    match outcome_of(&journaled, "c-7") {
        Record::Outcome {
            result,
            position_id,
            ..
        } => assert_eq!((result.as_str(), *position_id), ("filled", Some(7))),
        r => panic!("{r:?}"),
    }
    assert_eq!(core.retained().pending, 0);
}

#[test]
fn a_close_found_filled_for_another_position_keeps_the_models_position() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, Some(8)))
        .pending(intent(&m, "c-7", Op::Close, false, 100_000, Some(7)))
        .core();
    let held = position(8, &m.label(), "o-8", true, 100_000);
    reconcile(&mut core, vec![held], |_| {
        Ok(Some(OrderResult::Filled {
            position_id: 7,
            price: 1.1,
            volume: 100_000,
        }))
    });
    assert_eq!(
        core.policy.models[&m].real.as_ref().map(|r| r.position_id),
        Some(8)
    );
    assert!(
        core.policy.unreconciled.is_empty(),
        "{:?}",
        core.policy.unreconciled
    );
}

#[test]
fn an_open_that_never_executed_is_a_missed_entry_and_a_close_that_never_executed_is_not() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, None))
        .pending(intent(&m, "o-1", Op::Open, true, 100_000, None))
        .core();
    let (_, journaled) = reconcile(&mut core, vec![], |_| Ok(None));
    assert!(
        core.policy.models[&m].missed,
        "the entry was missed, not resent"
    );
    match outcome_of(&journaled, "o-1") {
        Record::Outcome { result, .. } => assert_eq!(result, "not_executed"),
        r => panic!("{r:?}"),
    }

    let mut core = Journal::new()
        .model(&m, state(Action::Wait, Some(7)))
        .pending(intent(&m, "c-7", Op::Close, false, 100_000, Some(7)))
        .core();
    let held = position(7, &m.label(), "o-7", true, 100_000);
    reconcile(&mut core, vec![held], |_| Ok(None));
    let st = &core.policy.models[&m];
    assert!(!st.missed, "{st:?}");
    assert_eq!(st.real.as_ref().map(|r| r.position_id), Some(7));
}

#[test]
fn a_position_closed_outside_the_executor_leaves_a_missed_entry_only_when_the_target_is_not_wait() {
    let (m, h) = (m15(), h1());
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, Some(7)))
        .model(&h, state(Action::Wait, Some(8)))
        .core();
    reconcile(&mut core, vec![], |_| unreachable!("nothing pending"));
    let (sm, sh) = (&core.policy.models[&m], &core.policy.models[&h]);
    assert_eq!((sm.real.as_ref(), sm.missed), (None, true), "{sm:?}");
    assert_eq!((sh.real.as_ref(), sh.missed), (None, false), "{sh:?}");
    assert!(core.retained().notes >= 2, "each is told why");
}

#[test]
fn a_held_position_of_ours_and_a_position_without_our_label_need_no_explaining() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, Some(7)))
        .core();
    let ours = position(7, &m.label(), "", true, 100_000);
    let manual = position(9, "manual", "", false, 500_000);
    reconcile(&mut core, vec![ours, manual], |_| unreachable!());
    assert!(
        core.policy.unreconciled.is_empty(),
        "{:?}",
        core.policy.unreconciled
    );
    assert_eq!(
        core.policy.models[&m].real.as_ref().map(|r| r.position_id),
        Some(7)
    );
}

#[test]
fn a_position_without_its_client_order_id_is_adopted_by_label_side_and_volume() {
    let m = m15();
    let journal = Journal::new()
        .model(&m, state(Action::LongWeak, None))
        .settled(intent(&m, "o-1", Op::Open, true, 300_000, None));
    let mut core = journal.core();
    let (_, journaled) = reconcile(
        &mut core,
        vec![position(55, &m.label(), "", true, 300_000)],
        |_| unreachable!(),
    );
    assert!(
        core.policy.unreconciled.is_empty(),
        "{:?}",
        core.policy.unreconciled
    );
    let st = &core.policy.models[&m];
    assert_eq!(
        st.real.as_ref().map(|r| (r.position_id, r.volume)),
        Some((55, 300_000))
    );
    assert!(!st.missed);
    // The adoption is journaled (the model's state).
    assert!(
        journaled
            .iter()
            .any(|r| matches!(r, Record::Model { state, .. }
        if state.real.as_ref().map(|p| p.position_id) == Some(55)))
    );
}

#[test]
fn a_labelled_position_differing_in_label_side_or_volume_from_every_open_intent_is_unreconciled() {
    let (m, h) = (m15(), h1());
    let differing = [
        (
            "another model's label",
            position(55, &h.label(), "", true, 300_000),
        ),
        (
            "the other side",
            position(55, &m.label(), "", false, 300_000),
        ),
        (
            "another volume",
            position(55, &m.label(), "", true, 200_000),
        ),
    ];
    for (what, p) in differing {
        let mut core = Journal::new()
            .model(&m, state(Action::LongWeak, None))
            .model(&h, state(Action::Wait, None))
            .settled(intent(&m, "o-1", Op::Open, true, 300_000, None))
            .core();
        reconcile(&mut core, vec![p], |_| unreachable!());
        assert!(
            core.policy.unreconciled.contains_key("EURUSD"),
            "{what}: {:?}",
            core.policy.models
        );
        assert!(
            core.policy.models.values().all(|s| s.real.is_none()),
            "{what}: nothing adopted: {:?}",
            core.policy.models
        );
    }
}

#[test]
fn an_intent_whose_fill_is_recorded_explains_no_other_position_by_label() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, None))
        .filled(intent(&m, "o-1", Op::Open, true, 300_000, None))
        .core();
    reconcile(
        &mut core,
        vec![position(56, &m.label(), "", true, 300_000)],
        |_| unreachable!(),
    );
    assert!(core.policy.unreconciled.contains_key("EURUSD"));
    assert_eq!(core.policy.models[&m].real, None);
}

#[test]
fn a_position_of_an_intent_whose_model_already_holds_another_is_unreconciled_not_adopted() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, Some(7)))
        .settled(intent(&m, "o-2", Op::Open, true, 100_000, None))
        .core();
    let held = position(7, &m.label(), "o-1", true, 100_000);
    let second = position(8, &m.label(), "o-2", true, 100_000);
    reconcile(&mut core, vec![held, second], |_| unreachable!());
    assert!(core.policy.unreconciled.contains_key("EURUSD"));
    assert_eq!(
        core.policy.models[&m].real.as_ref().map(|r| r.position_id),
        Some(7),
        "the held position stays the model's"
    );
}

#[test]
fn an_open_sent_before_the_restart_and_found_filled_is_journaled_filled_with_its_position() {
    let m = m15();
    let mut core = Journal::new()
        .model(&m, state(Action::LongWeak, None))
        .pending(intent(&m, "o-1", Op::Open, true, 100_000, None))
        .core();
    let held = position(55, &m.label(), "o-1", true, 100_000);
    let (_, journaled) = reconcile(&mut core, vec![held], |_| {
        Ok(Some(OrderResult::Filled {
            position_id: 55,
            price: 1.2,
            volume: 100_000,
        }))
    });
    match outcome_of(&journaled, "o-1") {
        Record::Outcome {
            result,
            position_id,
            price,
            volume,
            ..
        } => assert_eq!(
            (result.as_str(), *position_id, *price, *volume),
            ("filled", Some(55), Some(1.2), Some(100_000))
        ),
        r => panic!("{r:?}"),
    }
    let st = &core.policy.models[&m];
    assert_eq!(st.real.as_ref().map(|r| r.position_id), Some(55));
    assert!(!st.missed, "{st:?}");
}
