//! The prop-firm guard on its boundaries: Prague midnight (DST nights included), a loss carried
//! over midnight, a breach by floating P&L alone, the 1-Step's trailing maximum loss, restarts,
//! trading days, the best-day share and the headroom of each limit. Time is a parameter (UTC ms).

use oracle_executor_core::config::{KeyError, from_value};
use oracle_executor_core::propfirm::{
    Guard, GuardError, GuardState, Limit, MaxLoss, Preset, Progress, Rules, Verdict,
};
use oracle_executor_core::risk::RiskConfig;
use oracle_ipc::parse_time;

/// UTC ms of an ISO time.
fn ms(s: &str) -> i64 {
    parse_time(s).expect("an ISO time") * 1000
}

fn guard(p: Preset, initial: f64, at: &str) -> Guard {
    Guard::new(Rules::preset(p), initial, ms(at)).expect("valid rules")
}

fn upd(g: &mut Guard, at: &str, balance: f64, equity: f64) -> Verdict {
    g.on_equity(ms(at), balance, equity)
        .expect("finite amounts")
}

#[track_caller]
fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

#[test]
fn the_2step_daily_floor_is_the_prague_midnight_balance_less_5pct_of_the_initial() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    upd(&mut g, "2025-01-15T08:00:00Z", 100_000.0, 100_000.0);
    // A profit realised during the day does not move today's floor.
    let v = upd(&mut g, "2025-01-15T20:00:00Z", 104_000.0, 104_000.0);
    assert_eq!(v.daily.floor, 95_000.0);
    // 00:30 in Prague (23:30 UTC): a new day anchored on the 104,000 at midnight; the allowance
    // stays 5% of the initial balance (5,000, not 5,200).
    let v = upd(&mut g, "2025-01-15T23:30:00Z", 104_000.0, 104_000.0);
    let closed = v.day_closed.expect("midnight Prague passed");
    assert_eq!(closed.day_start_ms, ms("2025-01-14T23:00:00Z"));
    assert_eq!(closed.eod_balance, 104_000.0);
    assert_eq!(closed.profit, 4_000.0);
    assert_eq!(v.daily.floor, 99_000.0);
    let v = upd(&mut g, "2025-01-15T23:40:00Z", 104_000.0, 99_000.5);
    assert_eq!(v.breach, None);
    let v = upd(&mut g, "2025-01-15T23:41:00Z", 104_000.0, 99_000.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
    // The static maximum loss did not move with the profit.
    assert_eq!(v.max_loss.floor, 90_000.0);
}

#[test]
fn a_breach_by_floating_pnl_alone_with_the_balance_unchanged() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    upd(&mut g, "2025-01-15T08:00:00Z", 100_000.0, 100_000.0);
    let v = upd(&mut g, "2025-01-15T09:00:00Z", 100_000.0, 95_000.5);
    assert_eq!((v.breach, v.daily.floor), (None, 95_000.0));
    // Not one trade closed: the equity's open loss alone breaches.
    let v = upd(&mut g, "2025-01-15T09:00:01Z", 100_000.0, 95_000.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
    // And the maximum loss by floating P&L alone too (it comes first).
    let v = upd(&mut g, "2025-01-15T09:00:02Z", 100_000.0, 89_999.0);
    assert_eq!(v.breach, Some(Limit::MaxLoss));
}

#[test]
fn a_loss_carried_over_midnight_counts_against_the_new_day_at_once() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    // 23:30 in Prague: balance 100,000, a position 4,000 down.
    let v = upd(&mut g, "2025-01-15T22:30:00Z", 100_000.0, 96_000.0);
    assert_eq!(v.breach, None);
    // 00:10 in Prague: the new day's anchor is the balance at midnight (100,000), not the equity
    // (96,000): the floor is 95,000, so only 500 is left, not 4,500.
    let v = upd(&mut g, "2025-01-15T23:10:00Z", 100_000.0, 95_500.0);
    assert!(v.day_closed.is_some());
    assert_eq!(v.daily.floor, 95_000.0);
    assert_eq!(v.daily.money, 500.0);
    let v = upd(&mut g, "2025-01-15T23:20:00Z", 100_000.0, 94_999.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
}

#[test]
fn the_march_dst_night_makes_a_23_hour_day_ending_at_22_utc() {
    // Sunday 2025-03-30: 02:00 CET becomes 03:00 CEST; the day began 23:00 UTC on the 29th and
    // ends at 22:00 UTC on the 30th (a fixed +01:00 would end it at 23:00 UTC).
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-03-29T23:30:00Z");
    assert_eq!(g.next_day_start(), ms("2025-03-30T22:00:00Z"));
    upd(&mut g, "2025-03-29T23:30:00Z", 100_000.0, 100_000.0);
    // Through the switch (01:00 UTC) and the rest of the day: the same day, halted.
    let v = upd(&mut g, "2025-03-30T01:30:00Z", 100_000.0, 95_500.0);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    let v = upd(&mut g, "2025-03-30T21:59:59Z", 97_000.0, 97_000.0);
    assert_eq!(v.day_closed, None);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    // 00:00 CEST = 22:00 UTC: the next day, the halt lifted, anchored on 97,000.
    let v = upd(&mut g, "2025-03-30T22:00:00Z", 97_000.0, 97_000.0);
    let closed = v.day_closed.expect("midnight CEST");
    assert_eq!(closed.day_start_ms, ms("2025-03-29T23:00:00Z"));
    assert_eq!((closed.eod_balance, closed.profit), (97_000.0, -3_000.0));
    assert_eq!(v.halted, None);
    assert_eq!(v.daily.floor, 92_000.0);
    assert_eq!(g.next_day_start(), ms("2025-03-31T22:00:00Z"));
}

#[test]
fn the_october_dst_night_makes_a_25_hour_day_ending_at_23_utc() {
    // Sunday 2025-10-26: 03:00 CEST becomes 02:00 CET; the day began 22:00 UTC on the 25th and
    // ends at 23:00 UTC on the 26th (a fixed +02:00 would end it at 22:00 UTC).
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-10-25T22:00:00Z");
    assert_eq!(g.next_day_start(), ms("2025-10-26T23:00:00Z"));
    upd(&mut g, "2025-10-25T22:00:00Z", 100_000.0, 100_000.0);
    upd(&mut g, "2025-10-26T12:00:00Z", 98_000.0, 98_000.0);
    // 23:30 CET on the 26th: still the same day, still the 100,000 anchor.
    let v = upd(&mut g, "2025-10-26T22:30:00Z", 98_000.0, 95_000.0);
    assert_eq!(v.day_closed, None);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
    let v = upd(&mut g, "2025-10-26T23:00:00Z", 98_000.0, 98_000.0);
    assert_eq!(v.day_closed.map(|d| d.eod_balance), Some(98_000.0));
    assert_eq!(v.daily.floor, 93_000.0);
    assert_eq!(g.next_day_start(), ms("2025-10-27T23:00:00Z"));
}

#[test]
fn the_headroom_in_money_and_percent_for_each_limit() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    let v = upd(&mut g, "2025-01-15T08:00:00Z", 100_000.0, 97_000.0);
    // Daily: floor 95,000; 2,000 (2% of the initial) left; 3,000 of 5,000 used.
    assert_eq!((v.daily.floor, v.daily.money), (95_000.0, 2_000.0));
    close(v.daily.pct_of_initial, 2.0);
    close(v.daily.share_used, 0.6);
    // Maximum: floor 90,000; 7,000 (7%) left; 3,000 of 10,000 used.
    assert_eq!((v.max_loss.floor, v.max_loss.money), (90_000.0, 7_000.0));
    close(v.max_loss.pct_of_initial, 7.0);
    close(v.max_loss.share_used, 0.3);
    // Above the anchor nothing is used; past the floor the money is negative.
    let v = upd(&mut g, "2025-01-15T09:00:00Z", 100_000.0, 101_000.0);
    assert_eq!((v.daily.share_used, v.max_loss.share_used), (0.0, 0.0));
    let v = upd(&mut g, "2025-01-15T10:00:00Z", 100_000.0, 94_000.0);
    assert_eq!(v.daily.money, -1_000.0);
    close(v.daily.pct_of_initial, -1.0);
    close(v.daily.share_used, 1.2);
}

#[test]
fn the_1step_daily_loss_is_3pct() {
    let mut g = guard(Preset::Ftmo1Step, 100_000.0, "2025-01-15T08:00:00Z");
    let v = upd(&mut g, "2025-01-15T08:00:00Z", 100_000.0, 97_000.5);
    assert_eq!((v.daily.floor, v.breach), (97_000.0, None));
    let v = upd(&mut g, "2025-01-15T08:00:01Z", 100_000.0, 97_000.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
}

#[test]
fn the_1step_max_loss_trails_the_highest_end_of_day_balance_and_stops_at_the_initial() {
    let mut g = guard(Preset::Ftmo1Step, 100_000.0, "2025-01-13T08:00:00Z");
    let v = upd(&mut g, "2025-01-13T08:00:00Z", 100_000.0, 100_000.0);
    assert_eq!(v.max_loss.floor, 90_000.0);
    upd(&mut g, "2025-01-13T10:00:00Z", 104_000.0, 104_000.0);
    // Intraday the floor does not move.
    assert_eq!(g.max_loss_floor(), 90_000.0);
    // Day 1 ended at 104,000: the floor trails to 94,000.
    let v = upd(&mut g, "2025-01-14T08:00:00Z", 104_000.0, 104_000.0);
    assert_eq!(v.max_loss.floor, 94_000.0);
    // Day 2 peaks at 108,000 intraday and ends at 103,000: neither the peak nor the lower
    // end-of-day balance moves it.
    upd(&mut g, "2025-01-14T10:00:00Z", 108_000.0, 108_000.0);
    upd(&mut g, "2025-01-14T15:00:00Z", 103_000.0, 103_000.0);
    let v = upd(&mut g, "2025-01-15T08:00:00Z", 103_000.0, 103_000.0);
    assert_eq!(v.max_loss.floor, 94_000.0);
    // Day 3 ends at 112,000: 102,000 would be past the initial balance; it stops there.
    upd(&mut g, "2025-01-15T12:00:00Z", 112_000.0, 112_000.0);
    let closed = g
        .on_day_end(ms("2025-01-15T23:00:00Z"), 112_000.0)
        .unwrap()
        .expect("midnight Prague");
    assert_eq!(closed.eod_balance, 112_000.0);
    assert_eq!(g.max_loss_floor(), 100_000.0);
    // Day 4 ends higher still: the floor stays at the initial balance.
    upd(&mut g, "2025-01-16T12:00:00Z", 115_000.0, 115_000.0);
    let v = upd(&mut g, "2025-01-17T08:00:00Z", 115_000.0, 100_000.5);
    assert_eq!(v.max_loss.floor, 100_000.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
    let v = upd(&mut g, "2025-01-17T08:00:01Z", 115_000.0, 100_000.0);
    assert_eq!(v.breach, Some(Limit::MaxLoss));
}

#[test]
fn a_trailing_max_loss_without_the_lock_keeps_rising_past_the_initial() {
    let rules = Rules {
        max_loss: MaxLoss::TrailingEod,
        ..Rules::preset(Preset::Ftmo1Step)
    };
    let mut g = Guard::new(rules, 100_000.0, ms("2025-01-13T08:00:00Z")).unwrap();
    upd(&mut g, "2025-01-13T08:00:00Z", 100_000.0, 100_000.0);
    upd(&mut g, "2025-01-13T12:00:00Z", 112_000.0, 112_000.0);
    let v = upd(&mut g, "2025-01-14T08:00:00Z", 112_000.0, 102_000.5);
    assert_eq!((v.max_loss.floor, v.breach.is_some()), (102_000.0, true));
    let v = upd(&mut g, "2025-01-14T08:00:01Z", 112_000.0, 102_000.0);
    assert_eq!(v.breach, Some(Limit::MaxLoss));
}

#[test]
fn a_weekend_without_updates_closes_fridays_day_with_its_last_balance() {
    let mut g = guard(Preset::Ftmo1Step, 100_000.0, "2025-01-17T08:00:00Z");
    upd(&mut g, "2025-01-17T08:00:00Z", 100_000.0, 100_000.0);
    let v = upd(&mut g, "2025-01-17T20:00:00Z", 102_000.0, 97_500.0);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    // Monday 09:00 in Prague: Friday's day closes at 102,000; the days between made nothing.
    let v = upd(&mut g, "2025-01-20T08:00:00Z", 102_000.0, 102_000.0);
    let closed = v.day_closed.expect("midnights passed");
    assert_eq!(closed.day_start_ms, ms("2025-01-16T23:00:00Z"));
    assert_eq!((closed.eod_balance, closed.profit), (102_000.0, 2_000.0));
    assert_eq!(g.next_day_start(), ms("2025-01-20T23:00:00Z"));
    assert_eq!((v.daily.floor, v.max_loss.floor), (99_000.0, 92_000.0));
    assert_eq!(v.halted, None);
    assert_eq!(g.progress().best_day_profit, 2_000.0);
}

#[test]
fn the_2step_max_loss_stays_static_after_profitable_days() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-13T08:00:00Z");
    upd(&mut g, "2025-01-13T10:00:00Z", 108_000.0, 108_000.0);
    let v = upd(&mut g, "2025-01-14T08:00:00Z", 108_000.0, 108_000.0);
    assert_eq!(v.max_loss.floor, 90_000.0);
}

#[test]
fn on_day_end_before_midnight_closes_nothing() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    upd(&mut g, "2025-01-15T08:00:00Z", 100_000.0, 100_000.0);
    assert_eq!(
        g.on_day_end(ms("2025-01-15T22:59:59Z"), 90_000.0).unwrap(),
        None
    );
    assert_eq!(g.daily_floor(), Some(95_000.0));
}

#[test]
fn a_restart_keeps_the_days_anchor_and_gives_no_second_daily_allowance() {
    let mut before = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    upd(&mut before, "2025-01-15T08:00:00Z", 100_000.0, 100_000.0);
    // 4,100 lost and realised; the share used (0.82) halts.
    let v = upd(&mut before, "2025-01-15T10:00:00Z", 95_900.0, 95_900.0);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    let json = serde_json::to_string(before.state()).unwrap();
    let state: GuardState = serde_json::from_str(&json).unwrap();
    let mut after = Guard::restore(Rules::preset(Preset::Ftmo2Step), state).unwrap();
    // Same day: the floor is still 100,000 − 5,000, the halt still in force.
    let v = upd(&mut after, "2025-01-15T11:00:00Z", 95_900.0, 95_000.0);
    assert_eq!(v.daily.floor, 95_000.0);
    assert_eq!(v.breach, Some(Limit::DailyLoss));
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    // A guard started afresh would have anchored on 95,900: a second allowance.
    let mut fresh = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T11:00:00Z");
    let v = upd(&mut fresh, "2025-01-15T11:00:00Z", 95_900.0, 95_000.0);
    assert_eq!((v.daily.floor, v.breach), (90_900.0, None));
}

#[test]
fn a_restart_across_midnight_anchors_on_the_higher_of_the_balances_around_it() {
    let rules = || Rules::preset(Preset::Ftmo2Step);
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    upd(&mut g, "2025-01-15T21:00:00Z", 100_000.0, 99_000.0);
    let saved = g.state().clone();
    // Down over midnight; a stop-loss filled meanwhile (98,000): the balance at midnight is not
    // known, the higher one (100,000) is the anchor.
    let mut a = Guard::restore(rules(), saved.clone()).unwrap();
    let v = upd(&mut a, "2025-01-15T23:30:00Z", 98_000.0, 98_000.0);
    assert_eq!(v.daily.floor, 95_000.0);
    // A profit taken meanwhile (101,000): again the higher one.
    let mut b = Guard::restore(rules(), saved).unwrap();
    let v = upd(&mut b, "2025-01-15T23:30:00Z", 101_000.0, 101_000.0);
    assert_eq!(v.daily.floor, 96_000.0);
    // Running throughout, the last balance before midnight is the anchor (a profit taken after
    // midnight is the new day's).
    let v = upd(&mut g, "2025-01-15T23:30:00Z", 101_000.0, 101_000.0);
    assert_eq!(v.daily.floor, 95_000.0);
}

#[test]
fn a_daily_halt_lifts_at_prague_midnight_and_a_max_loss_halt_only_by_resume() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-07-15T08:00:00Z");
    upd(&mut g, "2025-07-15T08:00:00Z", 100_000.0, 100_000.0);
    // 78% of the daily allowance used: no action; 82%: act and halt.
    let v = upd(&mut g, "2025-07-15T09:00:00Z", 100_000.0, 96_100.0);
    assert_eq!((v.act, v.halted), (None, None));
    let v = upd(&mut g, "2025-07-15T09:01:00Z", 100_000.0, 95_900.0);
    assert_eq!(v.act, Some(Limit::DailyLoss));
    assert_eq!(v.breach, None);
    let h = v.halted.expect("halted");
    assert_eq!(
        (h.limit, h.at_ms, h.equity),
        (Limit::DailyLoss, ms("2025-07-15T09:01:00Z"), 95_900.0)
    );
    // Recovering does not lift it; 22:00 UTC (midnight CEST) does.
    let v = upd(&mut g, "2025-07-15T21:59:00Z", 99_000.0, 99_000.0);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::DailyLoss));
    let v = upd(&mut g, "2025-07-15T22:00:00Z", 99_000.0, 99_000.0);
    assert_eq!(v.halted, None);
    // 81% of the maximum loss (reference 100,000, floor 90,000) escalates to a max-loss halt.
    let v = upd(&mut g, "2025-07-16T09:00:00Z", 99_000.0, 91_900.0);
    assert_eq!(v.act, Some(Limit::MaxLoss));
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::MaxLoss));
    // Midnights do not lift it; a person does.
    let v = upd(&mut g, "2025-07-17T09:00:00Z", 99_000.0, 99_000.0);
    assert_eq!(v.halted.map(|h| h.limit), Some(Limit::MaxLoss));
    assert_eq!(g.resume().map(|h| h.limit), Some(Limit::MaxLoss));
    assert_eq!(g.halted(), None);
    // The refusal reasons are the ones the executor's ACKs already carry.
    assert_eq!(Limit::DailyLoss.code(), "HALTED_DAILY_LOSS");
    assert_eq!(Limit::MaxLoss.code(), "HALTED_MAX_DRAWDOWN");
}

#[test]
fn trading_days_are_prague_days_with_a_position_opened() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    g.on_open(ms("2025-01-15T10:00:00Z"));
    g.on_open(ms("2025-01-15T20:00:00Z"));
    assert_eq!(g.progress().trading_days, 1);
    // 23:30 UTC on the 15th is the 16th in Prague: a second day (UTC would say the same day).
    g.on_open(ms("2025-01-15T23:30:00Z"));
    g.on_open(ms("2025-01-16T10:00:00Z"));
    assert_eq!(g.progress().trading_days, 2);
    g.on_open(ms("2025-01-17T10:00:00Z"));
    let p = g.progress();
    assert_eq!((p.trading_days, p.min_trading_days), (3, 4));
    assert!(!p.min_days_met());
    g.on_open(ms("2025-01-20T10:00:00Z"));
    assert!(g.progress().min_days_met());
}

fn share(p: &Progress) -> f64 {
    p.best_day_share.expect("a profit")
}

#[test]
fn the_1step_best_day_share_is_reported_and_never_halts() {
    let mut g = guard(Preset::Ftmo1Step, 100_000.0, "2025-01-13T08:00:00Z");
    let days = [
        ("2025-01-13T08:00:00Z", 100_000.0),
        ("2025-01-13T12:00:00Z", 103_000.0),
        ("2025-01-14T12:00:00Z", 104_000.0),
        ("2025-01-15T12:00:00Z", 103_500.0),
    ];
    for (at, b) in days {
        let v = upd(&mut g, at, b, b);
        assert_eq!((v.act, v.halted), (None, None));
    }
    // Best day +3,000 of a 3,500 total: 86%, over 50%.
    let p = g.progress();
    assert_eq!((p.best_day_profit, p.total_profit), (3_000.0, 3_500.0));
    close(share(&p), 3_000.0 / 3_500.0);
    assert_eq!(p.best_day_ok(), Some(false));
    // Two more winning days bring it under 50%.
    upd(&mut g, "2025-01-16T12:00:00Z", 105_500.0, 105_500.0);
    upd(&mut g, "2025-01-17T12:00:00Z", 106_500.0, 106_500.0);
    let p = g.progress();
    close(share(&p), 3_000.0 / 6_500.0);
    assert_eq!(p.best_day_ok(), Some(true));
    // Today's running profit counts as a day too.
    upd(&mut g, "2025-01-20T12:00:00Z", 111_000.0, 111_000.0);
    let p = g.progress();
    assert_eq!(p.best_day_profit, 4_500.0);
    close(share(&p), 4_500.0 / 11_000.0);
}

#[test]
fn no_profit_means_no_best_day_share() {
    let mut g = guard(Preset::Ftmo1Step, 100_000.0, "2025-01-13T08:00:00Z");
    upd(&mut g, "2025-01-13T12:00:00Z", 99_000.0, 99_000.0);
    let p = g.progress();
    assert_eq!(p.best_day_share, None);
    assert_eq!(p.best_day_ok(), Some(false));
    // The 2-Step has no such rule.
    let two = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-13T08:00:00Z");
    assert_eq!(two.progress().best_day_ok(), None);
}

#[test]
fn a_custom_preset_uses_the_users_numbers() {
    let rules = Rules {
        daily_loss_pct: 4.0,
        max_loss_pct: 8.0,
        act_at_share: 0.5,
        ..Rules::preset(Preset::Custom)
    };
    let mut g = Guard::new(rules, 50_000.0, ms("2025-01-15T08:00:00Z")).unwrap();
    let v = upd(&mut g, "2025-01-15T08:00:00Z", 50_000.0, 49_100.0);
    assert_eq!((v.daily.floor, v.max_loss.floor), (48_000.0, 46_000.0));
    // 900 of 2,000 used: under half.
    assert_eq!(v.act, None);
    let v = upd(&mut g, "2025-01-15T08:00:01Z", 50_000.0, 48_900.0);
    assert_eq!(v.act, Some(Limit::DailyLoss));
}

#[test]
fn bad_input_is_refused_naming_the_thing_at_fault() {
    let mut g = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z");
    let e = g
        .on_equity(ms("2025-01-15T08:00:00Z"), 100_000.0, f64::NAN)
        .unwrap_err();
    assert!(
        matches!(e, GuardError::NotFinite { what: "equity", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("equity"), "{e}");
    let e = g
        .on_equity(ms("2025-01-15T08:00:00Z"), f64::INFINITY, 100_000.0)
        .unwrap_err();
    assert!(e.to_string().contains("balance"), "{e}");
    // Nothing was taken from the refused updates.
    assert_eq!(g.state().day_anchor, None);
    let e = Guard::new(Rules::preset(Preset::Ftmo2Step), 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("initial balance"), "{e}");
    let rules = Rules {
        daily_loss_pct: 0.0,
        ..Rules::preset(Preset::Custom)
    };
    let e = Guard::new(rules, 100_000.0, 0).unwrap_err();
    assert!(e.to_string().contains("daily_loss_pct"), "{e}");
    let rules = Rules {
        act_at_share: 1.5,
        ..Rules::preset(Preset::Custom)
    };
    let e = Guard::new(rules, 100_000.0, 0).unwrap_err();
    assert!(e.to_string().contains("act_at_share"), "{e}");
    let mut state = guard(Preset::Ftmo2Step, 100_000.0, "2025-01-15T08:00:00Z")
        .state()
        .clone();
    state.day_anchor = Some(f64::NAN);
    let e = Guard::restore(Rules::preset(Preset::Ftmo2Step), state).unwrap_err();
    assert!(e.to_string().contains("day_anchor"), "{e}");
    let e = Preset::parse("ftmo-3step").unwrap_err();
    assert!(e.contains("ftmo-3step") && e.contains("ftmo-2step"), "{e}");
    for p in [Preset::Ftmo2Step, Preset::Ftmo1Step, Preset::Custom] {
        assert_eq!(Preset::parse(p.name()), Ok(p));
    }
}

fn risk_of(block: serde_json::Value) -> Result<RiskConfig, Vec<KeyError>> {
    from_value(&serde_json::json!({ "risk": block })).map(|c| c.risk)
}

#[test]
fn without_a_preset_the_config_keeps_todays_risk_guard() {
    let r = risk_of(serde_json::json!({"daily_loss_pct": 4.0})).unwrap();
    assert_eq!((r.preset, r.daily_loss_pct), (None, 4.0));
    assert_eq!(Rules::from_risk(&r), None);
    assert_eq!(Rules::from_risk(&RiskConfig::default()), None);
}

#[test]
fn risk_preset_ftmo_1step_gives_the_1step_rules_and_sets_the_old_guards_percents() {
    let r = risk_of(serde_json::json!({"preset": "ftmo-1step"})).unwrap();
    assert_eq!(r.preset, Some(Preset::Ftmo1Step));
    // The RiskGuard still in use gets the 3% daily loss too.
    assert_eq!((r.daily_loss_pct, r.max_drawdown_pct), (3.0, 10.0));
    let rules = Rules::from_risk(&r).expect("a preset");
    assert_eq!(rules, Rules::preset(Preset::Ftmo1Step));
    // Its guard trails the maximum loss.
    let mut g = Guard::new(rules, 100_000.0, ms("2025-01-13T08:00:00Z")).unwrap();
    upd(&mut g, "2025-01-13T08:00:00Z", 100_000.0, 100_000.0);
    upd(&mut g, "2025-01-13T12:00:00Z", 105_000.0, 105_000.0);
    let v = upd(&mut g, "2025-01-14T08:00:00Z", 105_000.0, 105_000.0);
    assert_eq!((v.daily.floor, v.max_loss.floor), (102_000.0, 95_000.0));
}

#[test]
fn risk_preset_custom_takes_the_files_numbers() {
    let r = risk_of(serde_json::json!({
        "preset": "custom", "daily_loss_pct": 4.0, "max_drawdown_pct": 8.0,
        "day_start": "America/New_York"
    }))
    .unwrap();
    let rules = Rules::from_risk(&r).expect("a preset");
    assert_eq!(rules.preset, Preset::Custom);
    assert_eq!((rules.daily_loss_pct, rules.max_loss_pct), (4.0, 8.0));
    assert_eq!(rules.day_start.name(), "America/New_York");
}

#[test]
fn risk_preset_conflicts_and_unknown_names_are_refused_by_key() {
    let keys = |block| {
        let errs = risk_of(block).unwrap_err();
        errs.into_iter().map(|e| (e.key, e.msg)).collect::<Vec<_>>()
    };
    let errs = keys(serde_json::json!({"preset": "ftmo-3step"}));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "risk.preset");
    assert!(
        errs[0].1.contains("ftmo-3step") && errs[0].1.contains("ftmo-1step"),
        "{errs:?}"
    );
    assert_eq!(keys(serde_json::json!({"preset": 2}))[0].0, "risk.preset");
    // A firm's preset fixes its percents and its zone; the same value written out is fine.
    let errs = keys(serde_json::json!({
        "daily_loss_pct": 5.0, "max_drawdown_pct": 10.0, "day_start": "UTC", "preset": "ftmo-1step"
    }));
    let named: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(named, ["risk.daily_loss_pct", "risk.day_start"], "{errs:?}");
    assert!(
        errs[0].1.contains("custom") && errs[0].1.contains('3'),
        "{errs:?}"
    );
    let r = risk_of(serde_json::json!({"preset": "ftmo-2step", "daily_loss_pct": 5})).unwrap();
    assert_eq!(r.preset, Some(Preset::Ftmo2Step));
    // Every preset anchors the day on the balance.
    let errs = keys(serde_json::json!({"preset": "custom", "daily_anchor": "equity"}));
    assert_eq!(errs[0].0, "risk.daily_anchor");
}
