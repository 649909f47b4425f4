//! A bar file replayed into the paper book (`--feed-csv SYM_TF=FILE`), read as it goes.
//!
//! The file is parsed once at start ([`Replay::open`]), so a malformed line stops the executor
//! before anything runs, naming the file and the line, as before; then it is read again bar by
//! bar while the feed sends them. Only the next bar and the reader's buffer stay in memory, not
//! the whole file: a 3,300-bar replay of 20 streams held ~3 MB of bars (48 bytes each) for the
//! whole run, what no live run holds.
//!
//! [`feed`] sends the replays' bars to the engine as [`Feed::Bar`]s, every stream's bar of one
//! instant together, then one pause.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use oracle_ipc::Timeframe;
use tokio::sync::mpsc;

use crate::broker::Bar;
use crate::feed::Feed;

/// One bar file: `time,open,high,low,close,volume` with a header line.
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    reader: BufReader<File>,
    /// 1-based number of the last line read.
    line_no: usize,
    line: String,
    next: Option<Bar>,
}

/// Parses line `line_no` (1-based) of `path`.
fn parse(path: &Path, line_no: usize, line: &str) -> anyhow::Result<Bar> {
    let bad = || {
        anyhow::anyhow!(
            "{}:{}: expected time,open,high,low,close,volume",
            path.display(),
            line_no
        )
    };
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 6 {
        return Err(bad());
    }
    let time = oracle_ipc::parse_time(f[0]).ok_or_else(bad)?;
    let p = |s: &str| s.parse::<f64>().map_err(|_| bad());
    Ok(Bar {
        time,
        open: p(f[1])?,
        high: p(f[2])?,
        low: p(f[3])?,
        close: p(f[4])?,
        // A whole tick volume, as the BAR line carries it.
        volume: (f[5].parse::<f64>().map_err(|_| bad())? as u64) as f64,
    })
}

impl Replay {
    /// Opens `path`, checks every line (the first error names the file and the line) and
    /// positions the reader on the first bar.
    pub fn open(path: &Path) -> anyhow::Result<Replay> {
        let mut r = Replay::reader(path)?;
        while r.read()?.is_some() {}
        let mut r = Replay::reader(path)?;
        r.next = r.read()?;
        Ok(r)
    }

    fn reader(path: &Path) -> anyhow::Result<Replay> {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut r = Replay {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            line_no: 0,
            line: String::new(),
            next: None,
        };
        // The header.
        r.read_line()?;
        Ok(r)
    }

    /// The next line into `self.line`; `false` at the end of the file.
    fn read_line(&mut self) -> anyhow::Result<bool> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .with_context(|| format!("{}", self.path.display()))?;
        self.line_no += 1;
        Ok(n > 0)
    }

    /// The next bar of the file (`None` at its end).
    fn read(&mut self) -> anyhow::Result<Option<Bar>> {
        if !self.read_line()? {
            return Ok(None);
        }
        let line = self.line.trim_end_matches(['\n', '\r']);
        parse(&self.path, self.line_no, line).map(Some)
    }

    /// The next bar to send, if any.
    pub fn peek(&self) -> Option<&Bar> {
        self.next.as_ref()
    }

    /// Takes the next bar and reads the one after it. The file was checked at open, so an
    /// error here means it changed or could not be read since: it is logged and the replay
    /// ends there.
    pub fn advance(&mut self) -> Option<Bar> {
        let bar = self.next.take()?;
        self.next = match self.read() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("replay of {} ends: {e:#}", self.path.display());
                None
            }
        };
        Some(bar)
    }

    /// Takes up to `n` bars (the history that comes before the replayed ones).
    pub fn take(&mut self, n: usize) -> Vec<Bar> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n
            && let Some(b) = self.advance()
        {
            out.push(b);
        }
        out
    }
}

/// A count read while a [`Gate`] waits: the HISTORY requests answered so far (the IPC
/// server's counter).
pub type Count = Box<dyn Fn() -> u64 + Send + Sync>;

/// Start gate of a paper replay (`--feed-start-file`, `--feed-wait-client`).
pub struct Gate {
    /// Hold the replay until this file exists.
    pub start_file: Option<PathBuf>,
    /// The HISTORY requests answered so far and the number of replayed streams.
    pub wait_client: Option<(Count, u64)>,
}

impl Gate {
    /// Returns when the file exists and, with `wait_client`, once HISTORY_END was sent for
    /// every replayed stream (or 2 s after the first one: a model the predictor could not load
    /// does not hold the replay).
    pub async fn wait(&self) {
        let tick = Duration::from_millis(10);
        if let Some(f) = &self.start_file {
            tracing::info!(file = %f.display(), "replay held until this file exists");
            while !f.exists() {
                tokio::time::sleep(tick).await;
            }
        }
        if let Some((answered, streams)) = &self.wait_client {
            tracing::info!("replay held until an IPC client has been answered HISTORY");
            let mut first: Option<tokio::time::Instant> = None;
            loop {
                let n = answered();
                if n >= *streams {
                    break;
                }
                if n > 0 {
                    let t = *first.get_or_insert_with(tokio::time::Instant::now);
                    if t.elapsed() >= Duration::from_secs(2) {
                        break;
                    }
                }
                tokio::time::sleep(tick).await;
            }
        }
    }
}

/// Sends the replays' bars to `tx` until they end (or the receiver is gone): every stream's bar
/// of the earliest pending instant goes out together ("20 symbols closing on the same bar"),
/// then one pause of `interval`. `vclock` (Unix s) moves to the latest bar's close + 1 s: a
/// paper replay's virtual time.
pub async fn feed(
    mut replays: Vec<(String, Timeframe, Replay)>,
    interval: Duration,
    vclock: &AtomicI64,
    tx: &mpsc::Sender<Feed>,
) {
    while let Some(t) = replays
        .iter()
        .filter_map(|(_, _, r)| r.peek().map(|b| b.time))
        .min()
    {
        for (sym, tf, r) in replays.iter_mut() {
            if r.peek().is_none_or(|b| b.time != t) {
                continue;
            }
            let Some(bar) = r.advance() else { continue };
            vclock.fetch_max(bar.time + tf.seconds() + 1, Ordering::SeqCst);
            let ev = Feed::Bar {
                symbol: sym.clone(),
                tf: *tf,
                bar,
                spread: 0.0,
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` written to a fresh folder of its own (removed by the caller's [`Gone`]).
    fn file(name: &str, text: &str) -> (Gone, PathBuf) {
        let d = std::env::temp_dir().join(format!(
            "oracle-replay-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&d).expect("folder");
        let p = d.join(name);
        std::fs::write(&p, text).expect("write");
        (Gone(d), p)
    }

    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_replay_gives_the_files_bars_in_order_then_ends() {
        let (_d, p) = file(
            "EURUSD_M5.csv",
            "time,open,high,low,close,volume\n\
             2024-01-01T00:00:00Z,1.1,1.2,1.0,1.15,10\n\
             2024-01-01T00:05:00Z,1.15,1.25,1.1,1.2,11\r\n\
             2024-01-01T00:10:00Z,1.2,1.3,1.2,1.25,12\n",
        );
        let mut r = Replay::open(&p).expect("open");
        let hist = r.take(1);
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0].time, 1_704_067_200);
        assert_eq!(r.peek().map(|b| b.time), Some(1_704_067_500));
        let b = r.advance().expect("second bar");
        assert_eq!(
            (b.open, b.high, b.low, b.close, b.volume),
            (1.15, 1.25, 1.1, 1.2, 11.0)
        );
        assert_eq!(r.advance().map(|b| b.close), Some(1.25));
        assert!(r.peek().is_none());
        assert!(r.advance().is_none());
        assert!(r.take(5).is_empty());
    }

    #[test]
    fn a_malformed_line_anywhere_in_the_file_is_refused_at_open_naming_it() {
        let mut text = String::from("time,open,high,low,close,volume\n");
        for _ in 0..100 {
            text.push_str("2024-01-01T00:00:00Z,1.1,1.2,1.0,1.15,10\n");
        }
        text.push_str("2024-01-02T00:00:00Z,1.1,oops,1.0,1.15,10\n");
        let (_d, p) = file("EURUSD_M5.csv", &text);
        let e = Replay::open(&p).expect_err("a bad line");
        let msg = format!("{e:#}");
        assert!(msg.contains("EURUSD_M5.csv:102:"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_refused_naming_it() {
        let e = Replay::open(Path::new("/nonexistent/GBPUSD_H1.csv")).expect_err("missing");
        assert!(format!("{e:#}").contains("GBPUSD_H1.csv"), "{e:#}");
    }
}
