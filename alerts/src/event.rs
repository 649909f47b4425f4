//! What an alert says: the [`Event`] values a process pushes and their one-line texts (pure).

use serde::{Deserialize, Serialize};

/// A kind of event, as the `alerts.events` setting names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Process start and stop.
    Process,
    /// Trading halted, and why.
    Halt,
    /// A limit's used share crossing a threshold (50%, 80%).
    Headroom,
    /// The broker refused the application's or the account's authentication.
    Auth,
    /// The broker connection down for longer than `disconnect_after_s` (and back).
    Disconnect,
    /// An order refused (by the guard or the broker).
    OrderRefused,
    /// A model refused at load.
    ModelRefused,
    /// The day's summary at midnight Europe/Prague.
    DailySummary,
    /// `oracle alert-test` (always sent, whatever `events` says).
    Test,
}

impl EventKind {
    /// Every kind a setting may name (all on by default).
    pub const ALL: [EventKind; 8] = [
        EventKind::Process,
        EventKind::Halt,
        EventKind::Headroom,
        EventKind::Auth,
        EventKind::Disconnect,
        EventKind::OrderRefused,
        EventKind::ModelRefused,
        EventKind::DailySummary,
    ];

    /// The setting's spelling (`order_refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Process => "process",
            EventKind::Halt => "halt",
            EventKind::Headroom => "headroom",
            EventKind::Auth => "auth",
            EventKind::Disconnect => "disconnect",
            EventKind::OrderRefused => "order_refused",
            EventKind::ModelRefused => "model_refused",
            EventKind::DailySummary => "daily_summary",
            EventKind::Test => "test",
        }
    }
}

/// The day's figures the executor hands over at midnight Europe/Prague.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailySummary {
    /// The day that ended (`2026-12-05`, Prague's civil date).
    pub day: String,
    /// Account currency (`USD`).
    pub currency: String,
    /// Balance at the day's start.
    pub balance_start: f64,
    /// Balance at its end.
    pub balance_end: f64,
    /// Equity at its end.
    pub equity: f64,
    /// Orders sent during the day.
    pub orders: u32,
    /// Orders refused during the day.
    pub refused: u32,
    /// Positions open at the day's end.
    pub open_positions: u32,
    /// The highest share of the daily-loss limit used during the day, percent, when a guard runs.
    pub daily_loss_used_pct: Option<f64>,
}

/// One thing worth telling the operator. The caller builds the value and pushes it; the text is
/// made, redacted and sent on the worker thread.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A process started (`oracle-executor`, with e.g. `live, account 12345, 20 models`).
    Started {
        /// The process.
        process: String,
        /// Mode, account, models.
        detail: String,
    },
    /// A process is stopping.
    Stopping {
        /// The process.
        process: String,
        /// Why (a signal, a fatal error).
        reason: String,
    },
    /// Trading halted.
    Halted {
        /// Why (`daily loss 4.02% of 5%`, `oracle halt`).
        reason: String,
        /// Whether every position was closed.
        flattened: bool,
    },
    /// A limit's used share crossed `threshold_pct` upwards.
    Headroom {
        /// The limit (`daily loss`, `max loss`).
        limit: String,
        /// Share of the limit used, percent.
        used_pct: f64,
        /// The threshold crossed (50, 80).
        threshold_pct: u8,
        /// Money left before the limit.
        left: f64,
        /// Account currency.
        currency: String,
    },
    /// The broker refused authentication.
    AuthFailed {
        /// What was refused and the broker's code (`access token: CH_ACCESS_TOKEN_INVALID`).
        what: String,
    },
    /// The broker connection has been down for `for_s` seconds.
    Disconnected {
        /// Seconds since the connection was lost.
        for_s: u64,
    },
    /// The broker connection is back after a [`Event::Disconnected`] alert.
    Reconnected {
        /// Seconds it was down.
        after_s: u64,
    },
    /// An order refused.
    OrderRefused {
        /// The model (`EURUSD_H1`).
        model: String,
        /// The order (`BUY 0.10 EURUSD`, `close 0.10 EURUSD`).
        order: String,
        /// By whom and why (`guard: HALTED_DAILY_LOSS`, `broker: NOT_ENOUGH_MONEY`).
        reason: String,
    },
    /// A model refused at load.
    ModelRefused {
        /// The file.
        file: String,
        /// The loader's reason.
        reason: String,
    },
    /// The day's summary.
    DailySummary(DailySummary),
    /// A test message (`oracle alert-test`).
    Test {
        /// Who sent it.
        from: String,
    },
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{x:.2}")
    } else {
        format!("{x:.2}")
    }
}

impl Event {
    /// The kind the `alerts.events` setting filters on.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Started { .. } | Event::Stopping { .. } => EventKind::Process,
            Event::Halted { .. } => EventKind::Halt,
            Event::Headroom { .. } => EventKind::Headroom,
            Event::AuthFailed { .. } => EventKind::Auth,
            Event::Disconnected { .. } | Event::Reconnected { .. } => EventKind::Disconnect,
            Event::OrderRefused { .. } => EventKind::OrderRefused,
            Event::ModelRefused { .. } => EventKind::ModelRefused,
            Event::DailySummary(_) => EventKind::DailySummary,
            Event::Test { .. } => EventKind::Test,
        }
    }

    /// The message's one line (plain text, no markup), before redaction and the label.
    pub fn text(&self) -> String {
        match self {
            Event::Started { process, detail } => format!("{process} started ({detail})"),
            Event::Stopping { process, reason } => format!("{process} stopping: {reason}"),
            Event::Halted { reason, flattened } => format!(
                "HALTED: {reason}; {}",
                if *flattened {
                    "every position closed"
                } else {
                    "positions left open"
                }
            ),
            Event::Headroom {
                limit,
                used_pct,
                threshold_pct,
                left,
                currency,
            } => format!(
                "{limit} limit {used_pct:.1}% used (crossed {threshold_pct}%): {}{} left",
                money(*left),
                spaced(currency)
            ),
            Event::AuthFailed { what } => format!("authentication failed: {what}"),
            Event::Disconnected { for_s } => {
                format!("broker disconnected for {for_s} s")
            }
            Event::Reconnected { after_s } => {
                format!("broker connection back after {after_s} s")
            }
            Event::OrderRefused {
                model,
                order,
                reason,
            } => format!("order refused: {model}{}: {reason}", spaced(order)),
            Event::ModelRefused { file, reason } => {
                format!("model refused at load: {file}: {reason}")
            }
            Event::DailySummary(s) => {
                let mut t = format!(
                    "daily summary {} (day ending at midnight Europe/Prague): balance {} -> {}{} ({}), equity {}, {} orders ({} refused), {} positions open",
                    s.day,
                    money(s.balance_start),
                    money(s.balance_end),
                    spaced(&s.currency),
                    signed(s.balance_end - s.balance_start),
                    money(s.equity),
                    s.orders,
                    s.refused,
                    s.open_positions,
                );
                if let Some(p) = s.daily_loss_used_pct {
                    t.push_str(&format!(", daily-loss limit at most {p:.1}% used"));
                }
                t
            }
            Event::Test { from } => format!("test message from {from}: alerts reach this channel"),
        }
    }
}

/// ` USD` (a word after a space), or nothing for an empty one (a currency or an order the
/// process does not know).
fn spaced(word: &str) -> String {
    if word.is_empty() {
        String::new()
    } else {
        format!(" {word}")
    }
}

/// The line sent when the queue dropped alerts (the oldest first) since the last one sent.
pub fn dropped_text(n: u64) -> String {
    if n == 1 {
        "1 alert dropped (alert queue full)".to_string()
    } else {
        format!("{n} alerts dropped (alert queue full)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_says_what_happened_in_one_line() {
        let cases = [
            (
                Event::Halted {
                    reason: "daily loss 4.02% of 5%".into(),
                    flattened: true,
                },
                "HALTED: daily loss 4.02% of 5%; every position closed",
            ),
            (
                Event::Headroom {
                    limit: "daily loss".into(),
                    used_pct: 81.25,
                    threshold_pct: 80,
                    left: 937.5,
                    currency: "USD".into(),
                },
                "daily loss limit 81.2% used (crossed 80%): 937.50 USD left",
            ),
            (
                Event::AuthFailed {
                    what: "access token: CH_ACCESS_TOKEN_INVALID".into(),
                },
                "authentication failed: access token: CH_ACCESS_TOKEN_INVALID",
            ),
            (
                Event::Disconnected { for_s: 61 },
                "broker disconnected for 61 s",
            ),
            (
                Event::OrderRefused {
                    model: "EURUSD_H1".into(),
                    order: "BUY 0.10 EURUSD".into(),
                    reason: "broker: NOT_ENOUGH_MONEY".into(),
                },
                "order refused: EURUSD_H1 BUY 0.10 EURUSD: broker: NOT_ENOUGH_MONEY",
            ),
            (
                Event::ModelRefused {
                    file: "GBPUSD_M5.zip".into(),
                    reason: "sha256 mismatch".into(),
                },
                "model refused at load: GBPUSD_M5.zip: sha256 mismatch",
            ),
            (
                Event::Started {
                    process: "oracle-executor".into(),
                    detail: "live, account 42".into(),
                },
                "oracle-executor started (live, account 42)",
            ),
            (
                Event::Stopping {
                    process: "oracle-executor".into(),
                    reason: "SIGTERM".into(),
                },
                "oracle-executor stopping: SIGTERM",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.text(), want, "{e:?}");
            assert!(!e.text().contains('\n'));
        }
        let s = Event::DailySummary(DailySummary {
            day: "2026-12-05".into(),
            currency: "EUR".into(),
            balance_start: 100_000.0,
            balance_end: 99_750.5,
            equity: 99_800.0,
            orders: 12,
            refused: 1,
            open_positions: 3,
            daily_loss_used_pct: Some(12.0),
        });
        assert_eq!(
            s.text(),
            "daily summary 2026-12-05 (day ending at midnight Europe/Prague): balance 100000.00 -> 99750.50 EUR (-249.50), equity 99800.00, 12 orders (1 refused), 3 positions open, daily-loss limit at most 12.0% used"
        );
        assert_eq!(dropped_text(3), "3 alerts dropped (alert queue full)");
        // What the process does not know is left out, not shown as a double space.
        let unknown = Event::DailySummary(DailySummary {
            currency: String::new(),
            daily_loss_used_pct: None,
            ..match s {
                Event::DailySummary(d) => d,
                _ => unreachable!(),
            }
        });
        assert!(
            unknown
                .text()
                .contains("balance 100000.00 -> 99750.50 (-249.50), equity 99800.00"),
            "{}",
            unknown.text()
        );
        let e = Event::OrderRefused {
            model: "XAUUSD".into(),
            order: String::new(),
            reason: "UNKNOWN_SYMBOL".into(),
        };
        assert_eq!(e.text(), "order refused: XAUUSD: UNKNOWN_SYMBOL");
        let h = Event::Headroom {
            limit: "max loss".into(),
            used_pct: 50.0,
            threshold_pct: 50,
            left: 5_000.0,
            currency: String::new(),
        };
        assert_eq!(
            h.text(),
            "max loss limit 50.0% used (crossed 50%): 5000.00 left"
        );
        assert_eq!(dropped_text(1), "1 alert dropped (alert queue full)");
    }

    #[test]
    fn kinds_have_the_settings_spelling_and_the_webhook_json_names_the_event() {
        for k in EventKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let v = serde_json::to_value(Event::Disconnected { for_s: 75 }).unwrap();
        assert_eq!(v, serde_json::json!({"event": "disconnected", "for_s": 75}));
        assert_eq!(
            Event::Reconnected { after_s: 1 }.kind(),
            EventKind::Disconnect
        );
    }
}
