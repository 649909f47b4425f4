//! A batch's I/O steps are logged at debug level on `oracle_executor::engine::TIMING`, in the
//! order they happen, so the bench can split a batch's time between the broker's round trips
//! and the journal's fsync (the account read, the intents synced, each order handed to the
//! broker, the answers).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use oracle_executor::engine::TIMING;
use oracle_executor::policy::key_of;
use oracle_ipc::{Message, Timeframe, parse};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_entrys_batch_logs_its_steps_in_order_on_the_timing_target() {
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(format!("warn,{TIMING}=debug"))
        .with_writer(move || c2.clone())
        .finish();
    // Global: tracing caches callsite interest globally (the only test of this binary).
    tracing::subscriber::set_global_default(sub).expect("the only global subscriber here");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let d = tmpdir("batch-timing");
    let ack = rt.block_on(async {
        let mut e = engine(&d, book());
        let mut ack = String::new();
        // WAIT, then LONG_WEAK: a seen transition, an entry (only its batch is kept).
        for (i, action) in [(1, "WAIT"), (2, "LONG_WEAK")] {
            cap.0.lock().expect("lock").clear();
            e.on_bar(
                &key_of("EURUSD", Timeframe::M15).unwrap(),
                T0 + i * M15,
                1.0,
                0.0,
            );
            let line = sig("EURUSD", action, i);
            let Ok(Message::Signal(s)) = parse(&line) else {
                panic!("bad test line {line}")
            };
            ack = e.on_signal(now(i), &s).await.line;
        }
        ack
    });
    assert!(ack.contains("|OK|"), "{ack}");
    let text = String::from_utf8(cap.0.lock().expect("lock").clone()).expect("utf8");
    let steps: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == TIMING)
        .map(|v| {
            assert_eq!(v["side"], "live", "{v}");
            v["event"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(
        steps,
        // The core's order for entries: their margins are asked before their intents go to
        // the journal (with exits, while the exits are on the wire); the intents' write, then
        // its fsync, before the order is handed to the broker.
        [
            "account_read",
            "margins_read",
            "intents_written",
            "intents_synced",
            "order_handed",
            "answers_in"
        ],
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
