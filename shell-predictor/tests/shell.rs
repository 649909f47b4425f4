//! The shell's session over a WebSocket: when the twins' states are written.

mod support;

use futures_util::{SinkExt, StreamExt};
use oracle_predictor::engine::{Predictor, Settings};
use oracle_predictor::shell::{PERSIST_DELAY, ShellConfig, serve};
use oracle_predictor::store::STATE_FILE;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

async fn read_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Close(_) => panic!("the predictor closed"),
            _ => {}
        }
    }
}

/// Waits (up to 20 s: no timing is asserted) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn state(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join("state").join(STATE_FILE)).ok()
}

/// The executor journals (fsync) a batch's intents right after its SIGNALs come in: the
/// predictor's own fsync of its states must not sit beside it on the disk. The states of a
/// batch are written PERSIST_DELAY after its SIGNALs, not the moment they are sent (and still
/// written: a restart resumes from them).
#[tokio::test]
async fn the_states_are_written_after_the_signals_not_the_moment_they_are_sent() {
    let root = tmpdir("shell-persist-later");
    std::fs::create_dir_all(root.join("models")).expect("models dir");
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    let mut p = Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: Some(root.join("trace")),
            history_extra: 10,
        },
        Arc::new(FakeLoader),
    )
    .expect("predictor");
    assert!(p.scan().is_empty());
    let cfg = ShellConfig {
        url: "ws://127.0.0.1:9".into(),
        token: "tok".into(),
        poll: Duration::from_secs(3600),
        once: true,
    };
    let series = bars(60, 1_700_000_040, 0.3);
    let (a, b) = tokio::io::duplex(1 << 16);
    let executor = async {
        let mut ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        assert_eq!(read_text(&mut ws).await, "HELLO|tok");
        ws.send(Message::text("WELCOME|V:1")).await.expect("send");
        let req = read_text(&mut ws).await;
        assert!(req.starts_with("HISTORY|EURUSD|M1|"), "{req}");
        let upto = 40;
        for (i, bar) in series[..upto].iter().enumerate() {
            ws.feed(Message::text(bar_line("EURUSD", "M1", bar, i as u64, true)))
                .await
                .expect("send");
        }
        ws.send(Message::text(format!("HISTORY_END|EURUSD|M1|{upto}")))
            .await
            .expect("send");
        eventually("the warmed-up twin's state written", || {
            state(&root).is_some()
        })
        .await;
        for (i, bar) in series.iter().enumerate().skip(upto).take(3) {
            let before = state(&root).expect("state");
            ws.send(Message::text(bar_line(
                "EURUSD", "M1", bar, i as u64, false,
            )))
            .await
            .expect("send");
            let sig = read_text(&mut ws).await;
            assert!(sig.starts_with("SIGNAL|EURUSD|"), "{sig}");
            assert_eq!(
                state(&root).as_deref(),
                Some(before.as_str()),
                "the state of bar {i} was written as its SIGNAL went out"
            );
            tokio::time::sleep(PERSIST_DELAY).await;
            eventually("the state of the bar written after its SIGNAL", || {
                state(&root).is_some_and(|s| s != before)
            })
            .await;
        }
        // Bars faster than PERSIST_DELAY: the states of one are written before the next is
        // handled (never more than a batch behind).
        let before = state(&root).expect("state");
        let i = upto + 3;
        ws.send(Message::text(bar_line(
            "EURUSD", "M1", &series[i], i as u64, false,
        )))
        .await
        .expect("send");
        assert!(read_text(&mut ws).await.starts_with("SIGNAL|"));
        assert_eq!(state(&root).as_deref(), Some(before.as_str()));
        ws.send(Message::text(bar_line(
            "EURUSD",
            "M1",
            &series[i + 1],
            i as u64 + 1,
            false,
        )))
        .await
        .expect("send");
        assert!(read_text(&mut ws).await.starts_with("SIGNAL|"));
        let between = state(&root).expect("state");
        assert_ne!(
            between,
            before,
            "bar {i}'s state written before bar {} was handled",
            i + 1
        );
        tokio::time::sleep(PERSIST_DELAY).await;
        eventually("the last bar's state written", || {
            state(&root).is_some_and(|s| s != between)
        })
        .await;
        ws.close(None).await.expect("close");
        while ws.next().await.is_some() {}
    };
    let predictor = async {
        let ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        serve(&cfg, &mut p, ws).await
    };
    let ((), r) = tokio::join!(executor, predictor);
    r.expect("session");
}
