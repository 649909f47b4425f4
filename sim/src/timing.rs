//! The timing hook (`--timing-out FILE`, [`crate::SimConfig::timing_out`]): JSONL lines with the
//! wall clock (`SystemTime::now()`, integer µs since the Unix epoch) of the instants the
//! end-to-end benchmark and the chaos proof measure from the sim's side.
//!
//! ```json
//! {"ev":"bar_close","conn":3,"symbol":"EURUSD","period":"M15","bar_time":1704067200,"t_us":1732460000123456}
//! {"ev":"new_order","conn":3,"client_order_id":"ot-EURUSD-M15-1704067200-O","symbol":"EURUSD","side":"BUY","volume":100000,"t_us":1732460000124001}
//! {"ev":"request","conn":3,"kind":"ExpectedMarginReq","t_us":1732460000124100}
//! {"ev":"request","conn":3,"kind":"ClosePositionReq","position_id":7,"t_us":1732460000124200}
//! {"ev":"disconnect","conn":3,"reason":"fault: drop after 200 frames","t_us":1732460000125000}
//! ```
//!
//! `request` is every client request other than `NewOrderReq` (heartbeats left out), so a reader
//! can count what a client sent around an instant (the bench: requests per close instant); a
//! `ClosePositionReq`'s line names its position (the bench: bar close → exit on the wire).
//!
//! This is I/O of the shell only: the broker core never reads a clock. The clock is read under the
//! file's lock, right before the line is written, so within the file `t_us` never goes backwards
//! (unless the system clock is stepped back). Every line is flushed at once: another process
//! reads the file while the sim runs, and the sim may be killed.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::bars::Period;
use crate::msg::{NewOrder, Side};

/// The open timing file and what the lines need to name symbols.
#[derive(Debug)]
pub(crate) struct Timing {
    out: Mutex<BufWriter<File>>,
    /// Symbol id → name.
    names: Vec<(i64, String)>,
    failed: AtomicBool,
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Timing {
    /// Creates (truncates) `path`; `names` maps symbol ids to names.
    pub(crate) fn create(path: &Path, names: Vec<(i64, String)>) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Timing {
            out: Mutex::new(BufWriter::new(f)),
            names,
            failed: AtomicBool::new(false),
        })
    }

    /// The symbol's name, or its id when unknown.
    pub(crate) fn symbol_name(&self, id: i64) -> String {
        self.names
            .iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| id.to_string(), |(_, n)| n.clone())
    }

    /// Reads the clock and writes `{<head>,"t_us":…}` + newline, flushed.
    fn line(&self, head: &str) {
        let mut w = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let t = now_us();
        let r = writeln!(w, "{{{head},\"t_us\":{t}}}").and_then(|()| w.flush());
        if let Err(e) = r {
            if !self.failed.swap(true, Ordering::Relaxed) {
                tracing::warn!("timing file: {e} (further errors not logged)");
            }
        }
    }

    /// The head of a `bar_close` line (formatted before the frame is written, so the clock is
    /// read right after the write).
    pub(crate) fn bar_close_head(
        &self,
        conn: u64,
        symbol_id: i64,
        period: Period,
        bar_time_ms: i64,
    ) -> String {
        format!(
            "\"ev\":\"bar_close\",\"conn\":{conn},\"symbol\":{},\"period\":\"{}\",\"bar_time\":{}",
            js(&self.symbol_name(symbol_id)),
            period.name(),
            bar_time_ms.div_euclid(1000)
        )
    }

    /// Writes a line whose head came from [`Timing::bar_close_head`].
    pub(crate) fn stamp(&self, head: &str) {
        self.line(head);
    }

    /// A `new_order` line, now.
    pub(crate) fn new_order(&self, conn: u64, o: &NewOrder) {
        let side = match o.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let head = format!(
            "\"ev\":\"new_order\",\"conn\":{conn},\"client_order_id\":{},\"symbol\":{},\"side\":\"{side}\",\"volume\":{}",
            js(o.client_order_id.as_deref().unwrap_or("")),
            js(&self.symbol_name(o.symbol_id)),
            o.volume
        );
        self.line(&head);
    }

    /// A `request` line, now: a client request other than `NewOrderReq` (`kind` as
    /// [`crate::msg::Request::kind`]).
    pub(crate) fn request(&self, conn: u64, kind: &str) {
        self.line(&format!(
            "\"ev\":\"request\",\"conn\":{conn},\"kind\":{}",
            js(kind)
        ));
    }

    /// A `request` line of a `ClosePositionReq`, now, naming its position.
    pub(crate) fn close_position(&self, conn: u64, position_id: i64) {
        self.line(&format!(
            "\"ev\":\"request\",\"conn\":{conn},\"kind\":\"ClosePositionReq\",\"position_id\":{position_id}"
        ));
    }

    /// A `disconnect` line, now.
    pub(crate) fn disconnect(&self, conn: u64, reason: &str) {
        let head = format!(
            "\"ev\":\"disconnect\",\"conn\":{conn},\"reason\":{}",
            js(reason)
        );
        self.line(&head);
    }
}
