//! What the predictor keeps on disk: the twin states (one JSON file, replaced atomically after
//! every bar) and one trace file per model in the replay trace format (docs/contract.md §8).

use crate::isotime;
use oracle_core::{Bar, Symbol, Timeframe};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// File name of the state file inside the state directory.
pub const STATE_FILE: &str = "predictor-state.json";

/// The trace header, the same as `oracle replay`'s.
pub const TRACE_HEADER: &str = "time,action,direction,intensity,entry_price,realized_pnl";

/// The bar CSV header (DESIGN.md).
pub const BAR_HEADER: &str = "time,open,high,low,close,volume";

/// The persisted state of one twin (docs/contract.md §7): the state file's serde form of the
/// core's `oracle_core::TwinState` after at least one bar (serialization lives at the edge).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// Open time of the last accepted bar (Unix seconds).
    pub last_bar_time: i64,
    /// Bars accepted since the twin started from FLAT.
    pub bars_seen: u64,
    /// Position direction (−1, 0, 1).
    pub position_direction: i8,
    /// Position intensity (0..=3).
    pub position_intensity: u8,
    /// Entry price (0.0 when FLAT).
    pub entry_price: f64,
    /// Realised P&L, account money.
    pub realized_pnl: f64,
    /// Number of opens.
    pub trades: u64,
}

impl SavedState {
    /// The core's state to persist; `None` before the twin's first bar (nothing to save).
    pub fn of_core(s: &oracle_core::TwinState) -> Option<Self> {
        Some(Self {
            last_bar_time: s.last_bar_time?,
            bars_seen: s.bars_seen,
            position_direction: s.position_direction,
            position_intensity: s.position_intensity,
            entry_price: s.entry_price,
            realized_pnl: s.realized_pnl,
            trades: s.trades,
        })
    }

    /// The core's state to restore from.
    pub fn to_core(&self) -> oracle_core::TwinState {
        oracle_core::TwinState {
            last_bar_time: Some(self.last_bar_time),
            bars_seen: self.bars_seen,
            position_direction: self.position_direction,
            position_intensity: self.position_intensity,
            entry_price: self.entry_price,
            realized_pnl: self.realized_pnl,
            trades: self.trades,
        }
    }
}

/// One model's entry in the state file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Symbol, for a human reading the file: its name in the file, parsed when it is read.
    #[serde(with = "symbol_text")]
    pub symbol: Symbol,
    /// Timeframe, for a human reading the file: its name in the file, parsed when it is read.
    #[serde(with = "timeframe_text")]
    pub timeframe: Timeframe,
    /// The twin's state.
    pub state: SavedState,
    /// sha256 of the model zip the state was produced with (absent in older files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_sha256: String,
    /// The bar at `state.last_bar_time` and the state before it, so that a revision of that bar
    /// the predictor missed while it was down is applied on a restart (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bar: Option<LastBar>,
}

/// An entry's `symbol` in the file: the name as text, parsed into core's [`Symbol`] when read
/// (a bad one refuses the file, naming the field and the text).
mod symbol_text {
    use oracle_core::Symbol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Symbol, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Symbol, D::Error> {
        let text = String::deserialize(d)?;
        Symbol::new(&text)
            .map_err(|e| serde::de::Error::custom(format_args!("symbol {text:?}: {e}")))
    }
}

/// An entry's `timeframe` in the file: the name as text, parsed into core's [`Timeframe`] when
/// read (a bad one refuses the file, naming the field and the text).
mod timeframe_text {
    use oracle_core::Timeframe;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timeframe, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timeframe, D::Error> {
        let text = String::deserialize(d)?;
        Timeframe::from_name(&text)
            .filter(|t| t.is_streamed())
            .ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "timeframe {text:?} is not one a model may have ({})",
                    oracle_model::SUPPORTED_TIMEFRAMES.join(", ")
                ))
            })
    }
}

/// The last bar a twin took (its values as taken) and the twin's state just before it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastBar {
    /// Open time (Unix seconds).
    pub time: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Tick volume.
    pub volume: f64,
    /// The twin's state before this bar.
    pub before: SavedState,
}

impl LastBar {
    /// The bar `bar`, taken by a twin in state `before`.
    pub fn new(bar: &Bar, before: SavedState) -> Self {
        Self {
            time: bar.time,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            before,
        }
    }

    /// The bar's values.
    pub fn bar(&self) -> Bar {
        Bar {
            time: self.time,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
        }
    }
}

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// Format version (1).
    pub version: u32,
    /// Twin states by model name.
    pub models: BTreeMap<String, Entry>,
}

impl StateFile {
    /// Reads `dir/predictor-state.json`; a missing file is an empty state.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self {
                version: 1,
                models: BTreeMap::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Writes the file atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        // The rename is durable only once the directory entry is; best effort where a directory
        // cannot be opened for sync.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Formats one trace row: the bar's time, the action (`WARMUP` while warming up) and the
/// position and realised P&L after the bar, exactly as `oracle replay` prints them.
pub fn trace_row(time: i64, action: &str, st: &SavedState) -> String {
    format!(
        "{},{},{},{},{:.10},{:.6}",
        isotime::format(time),
        action,
        st.position_direction,
        st.position_intensity,
        st.entry_price + 0.0,
        st.realized_pnl + 0.0
    )
}

/// An append-only per-model trace file (`NAME.csv`), with the bars it was computed from beside
/// it (`NAME.bars.csv`, the bar CSV format), so the trace can be checked with `oracle replay`.
pub struct Trace {
    path: PathBuf,
    out: BufWriter<File>,
    bars: BufWriter<File>,
}

/// Rewrites `path` keeping the header and the rows up to `keep_until` (none without it), then
/// opens it for appending.
fn reopen(path: &Path, header: &str, keep_until: Option<i64>) -> io::Result<BufWriter<File>> {
    let mut kept = vec![header.to_string()];
    if let (Some(until), Ok(f)) = (keep_until, File::open(path)) {
        for line in BufReader::new(f).lines().skip(1) {
            let line = line?;
            let time = line.split(',').next().and_then(isotime::parse);
            match time {
                Some(t) if t <= until => kept.push(line),
                _ => break,
            }
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = BufWriter::new(File::create(&tmp)?);
        for line in &kept {
            writeln!(f, "{line}")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    Ok(BufWriter::with_capacity(
        TRACE_BUFFER,
        OpenOptions::new().append(true).open(path)?,
    ))
}

/// Buffer of each trace file: a bar's row is under 100 bytes and the rows are handed to the OS
/// after every batch of bars, so std's 8 KiB (×2 files ×20 models) would only sit resident.
const TRACE_BUFFER: usize = 1024;

impl Trace {
    /// Opens `dir/NAME.csv` and `dir/NAME.bars.csv`. With `keep_until` (a restored state's last
    /// bar time) the rows up to that time are kept and later ones dropped, so the files match the
    /// state exactly; without it they start anew.
    pub fn open(dir: &Path, name: &str, keep_until: Option<i64>) -> io::Result<Self> {
        let path = dir.join(format!("{name}.csv"));
        let out = reopen(&path, TRACE_HEADER, keep_until)?;
        let bars = reopen(
            &dir.join(format!("{name}.bars.csv")),
            BAR_HEADER,
            keep_until,
        )?;
        Ok(Self { path, out, bars })
    }

    /// Appends the rows of one bar (buffered until [`Trace::flush`]).
    pub fn push(&mut self, bar: &Bar, action: &str, st: &SavedState) -> io::Result<()> {
        writeln!(self.out, "{}", trace_row(bar.time, action, st))?;
        writeln!(
            self.bars,
            "{},{},{},{},{},{}",
            isotime::format(bar.time),
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume
        )
    }

    /// Hands the buffered rows to the OS (they survive a kill of the process).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.bars.flush()
    }

    /// The trace file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("oracle-pred-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("tmp dir");
        d
    }

    #[test]
    fn a_saved_state_is_the_core_state_after_a_bar_and_nothing_before() {
        assert_eq!(SavedState::of_core(&oracle_core::TwinState::FRESH), None);
        let core = oracle_core::TwinState {
            last_bar_time: Some(1_614_557_700),
            bars_seen: 351,
            position_direction: -1,
            position_intensity: 3,
            entry_price: 1.085_09,
            realized_pnl: -12.5,
            trades: 2,
        };
        let saved = SavedState::of_core(&core).expect("after a bar");
        assert_eq!(saved.last_bar_time, 1_614_557_700);
        assert_eq!(
            (saved.position_direction, saved.position_intensity),
            (-1, 3)
        );
        assert_eq!(saved.to_core(), core);
    }

    #[test]
    fn state_round_trips_atomically() {
        let d = tmpdir("state");
        assert!(StateFile::load(&d).expect("empty").models.is_empty());
        let mut s = StateFile {
            version: 1,
            ..Default::default()
        };
        s.models.insert(
            "EURUSD_M15".into(),
            Entry {
                symbol: Symbol::new("EURUSD").expect("symbol"),
                timeframe: Timeframe::M15,
                state: SavedState {
                    last_bar_time: 1_614_557_700,
                    bars_seen: 400,
                    position_direction: -1,
                    position_intensity: 2,
                    entry_price: 1.085_09 + 1e-16,
                    realized_pnl: -3.25,
                    trades: 4,
                },
                model_sha256: "ab12".into(),
                last_bar: None,
            },
        );
        s.save(&d).expect("save");
        assert_eq!(StateFile::load(&d).expect("load"), s);
        assert!(!d.join(format!("{STATE_FILE}.tmp")).exists());
        let text = fs::read_to_string(d.join(STATE_FILE)).expect("read");
        assert!(!text.contains("\"last_bar\""), "absent when empty: {text}");
        // With the last bar and the state before it.
        let e = s.models.get_mut("EURUSD_M15").expect("entry");
        let before = SavedState {
            last_bar_time: e.state.last_bar_time - 900,
            bars_seen: 399,
            position_direction: 0,
            position_intensity: 0,
            entry_price: 0.0,
            realized_pnl: -3.25,
            trades: 3,
        };
        let bar = Bar {
            time: e.state.last_bar_time,
            open: 1.085,
            high: 1.086 + 1e-15,
            low: 1.084,
            close: 1.085_09,
            volume: 42.0,
        };
        e.last_bar = Some(LastBar::new(&bar, before));
        s.save(&d).expect("save");
        let back = StateFile::load(&d).expect("load");
        assert_eq!(back, s);
        assert_eq!(
            back.models["EURUSD_M15"].last_bar.map(|l| l.bar()),
            Some(bar)
        );
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn an_older_state_file_loads() {
        let d = tmpdir("old");
        fs::write(
            d.join(STATE_FILE),
            r#"{"version":1,"models":{"X":{"symbol":"EURUSD","timeframe":"H1","state":{
                "last_bar_time":3600,"bars_seen":2,"position_direction":0,
                "position_intensity":0,"entry_price":0.0,"realized_pnl":0.0,"trades":0}}}}"#,
        )
        .expect("write");
        let s = StateFile::load(&d).expect("load");
        assert_eq!(s.models["X"].last_bar, None);
        assert_eq!(s.models["X"].model_sha256, "");
        fs::remove_dir_all(&d).expect("cleanup");
    }

    /// An entry's symbol and timeframe are parsed when the file is read (core's `Symbol` and
    /// `Timeframe`): a name no stream could carry refuses the file, naming the file, the field
    /// and the text, instead of loading as a string nothing is keyed by.
    #[test]
    fn a_state_file_entry_with_a_bad_symbol_or_timeframe_is_refused_naming_it() {
        let d = tmpdir("badkey");
        let file = |symbol: &str, timeframe: &str| {
            format!(
                r#"{{"version":1,"models":{{"X":{{"symbol":"{symbol}","timeframe":"{timeframe}","state":{{
                "last_bar_time":3600,"bars_seen":2,"position_direction":0,
                "position_intensity":0,"entry_price":0.0,"realized_pnl":0.0,"trades":0}}}}}}}}"#
            )
        };
        for (symbol, timeframe, field, bad) in [
            ("EUR USD", "H1", "symbol", "EUR USD"),
            ("", "H1", "symbol", ""),
            ("EURUSD", "H2", "timeframe", "H2"),
            ("EURUSD", "h1", "timeframe", "h1"),
        ] {
            fs::write(d.join(STATE_FILE), file(symbol, timeframe)).expect("write");
            let e = StateFile::load(&d).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            let text = e.to_string();
            assert!(text.contains(STATE_FILE), "{text}");
            assert!(text.contains(&format!("{field} {bad:?}")), "{text}");
        }
        // The good names load as the typed key, and are written back as the same text.
        fs::write(d.join(STATE_FILE), file("GER40.cash", "M15")).expect("write");
        let s = StateFile::load(&d).expect("load");
        assert_eq!(
            oracle_core::StreamKey::new(s.models["X"].symbol, s.models["X"].timeframe),
            oracle_core::StreamKey::parse("GER40.cash", "M15").expect("key")
        );
        s.save(&d).expect("save");
        let text = fs::read_to_string(d.join(STATE_FILE)).expect("read");
        assert!(text.contains(r#""symbol": "GER40.cash""#), "{text}");
        assert!(text.contains(r#""timeframe": "M15""#), "{text}");
        fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn trace_is_cut_back_to_the_state() {
        let d = tmpdir("trace");
        let bar = |t| Bar {
            time: t,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
        };
        let flat = SavedState {
            last_bar_time: 0,
            bars_seen: 1,
            position_direction: 0,
            position_intensity: 0,
            entry_price: 0.0,
            realized_pnl: -0.0,
            trades: 0,
        };
        let long = SavedState {
            position_direction: 1,
            position_intensity: 1,
            entry_price: 1.08509,
            ..flat
        };
        let mut t = Trace::open(&d, "X", None).expect("open");
        t.push(&bar(0), "WARMUP", &flat).expect("push");
        t.push(&bar(60), "LONG_WEAK", &long).expect("push");
        t.push(&bar(120), "LONG_WEAK", &long).expect("push");
        t.flush().expect("flush");
        drop(t);
        let t = Trace::open(&d, "X", Some(60)).expect("reopen");
        let text = std::fs::read_to_string(t.path()).expect("read");
        assert_eq!(
            text,
            format!(
                "{TRACE_HEADER}\n1970-01-01T00:00:00Z,WARMUP,0,0,0.0000000000,0.000000\n\
                 1970-01-01T00:01:00Z,LONG_WEAK,1,1,1.0850900000,0.000000\n"
            )
        );
        fs::remove_dir_all(&d).expect("cleanup");
    }
}
