//! A stand-in twin and loader with the real ones' contract (window purity, position rule,
//! restore + priming), so the shell is tested on its own.
#![allow(dead_code)]

use oracle_core::{
    Action, Bar, Decision, MAX_OBS, MAX_STATES, N_ACTIONS, N_HMM_FEATURES, N_MARKET_FEATURES,
    Position, Step, StreamKey, Warmup,
};
use oracle_predictor::store::SavedState;
use oracle_predictor::twins::{Loader, ModelSpec, Twin};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Decides from the window alone: above the window mean → long, below → short; the intensity
/// grows with the distance. Prices and P&L follow the contract's shape (close fills).
pub struct FakeTwin {
    spec: ModelSpec,
    ring: VecDeque<Bar>,
    state: Option<SavedState>,
}

impl FakeTwin {
    pub fn new(spec: ModelSpec) -> Self {
        Self {
            spec,
            ring: VecDeque::new(),
            state: None,
        }
    }
}

/// The core's decision of one bar with the stand-in's action, position, regime and P&L (the
/// fields the engine reads); the model's internals (features, posterior, logits) are zero.
fn decision(
    time: i64,
    action: usize,
    previous: Position,
    st: &SavedState,
    regime: usize,
    upnl: f64,
) -> Decision {
    Decision {
        time,
        action: Action::from_index(action).expect("0..7"),
        market_features: [0.0; N_MARKET_FEATURES],
        hmm_features: [0.0; N_HMM_FEATURES],
        posterior: [0.0; MAX_STATES],
        n_states: 0,
        regime,
        obs: [0.0; MAX_OBS],
        obs_dim: 0,
        logits: [0.0; N_ACTIONS],
        margin: 0.0,
        previous,
        position: Position {
            direction: st.position_direction,
            intensity: st.position_intensity,
            entry_price: st.entry_price,
        },
        closed_pnl: None,
        opened: false,
        realized_pnl: st.realized_pnl,
        unrealized_pnl: upnl,
    }
}

impl Twin for FakeTwin {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String> {
        if bar.close.is_nan() || bar.close <= 0.0 || bar.high < bar.low {
            return Err("bad prices".into());
        }
        let mut st = self.state.unwrap_or(SavedState {
            last_bar_time: i64::MIN,
            bars_seen: 0,
            position_direction: 0,
            position_intensity: 0,
            entry_price: 0.0,
            realized_pnl: 0.0,
            trades: 0,
        });
        if bar.time <= st.last_bar_time {
            return Err("not after the previous bar".into());
        }
        self.ring.push_back(*bar);
        if self.ring.len() > self.spec.window {
            self.ring.pop_front();
        }
        st.last_bar_time = bar.time;
        st.bars_seen += 1;
        if self.ring.len() < self.spec.window {
            self.state = Some(st);
            return Ok(Step::WarmingUp(Warmup {
                time: bar.time,
                bars_held: self.ring.len(),
                bars_needed: self.spec.window - self.ring.len(),
                position: Position::FLAT,
                realized_pnl: st.realized_pnl,
            }));
        }
        let mean = self.ring.iter().map(|b| b.close).sum::<f64>() / self.ring.len() as f64;
        let d = (bar.close - mean) / mean * 1000.0;
        let a = match d {
            x if x > 3.0 => 3,
            x if x > 1.5 => 2,
            x if x > 0.5 => 1,
            x if x < -3.0 => 6,
            x if x < -1.5 => 5,
            x if x < -0.5 => 4,
            _ => 0,
        };
        let (dir, int) = match a {
            0 => (0i8, 0u8),
            1..=3 => (1, a as u8),
            _ => (-1, (a - 3) as u8),
        };
        let previous = Position {
            direction: st.position_direction,
            intensity: st.position_intensity,
            entry_price: st.entry_price,
        };
        if (dir, int) != (st.position_direction, st.position_intensity) {
            if st.position_direction != 0 {
                st.realized_pnl += (bar.close - st.entry_price)
                    * f64::from(st.position_direction)
                    * f64::from(st.position_intensity)
                    * 1000.0;
            }
            st.position_direction = dir;
            st.position_intensity = int;
            st.entry_price = if dir == 0 { 0.0 } else { bar.close };
            if dir != 0 {
                st.trades += 1;
            }
        }
        let upnl = if dir == 0 {
            0.0
        } else {
            (bar.close - st.entry_price) * f64::from(dir) * f64::from(int) * 1000.0
        };
        self.state = Some(st);
        Ok(Step::Decision(decision(
            bar.time,
            a,
            previous,
            &st,
            (bar.time / 60 % 3) as usize,
            upnl,
        )))
    }

    fn state(&self) -> Option<SavedState> {
        self.state
    }

    fn restore(&mut self, state: &SavedState, priming: &[Bar]) -> Result<(), String> {
        self.ring = priming.iter().copied().collect();
        while self.ring.len() > self.spec.window {
            self.ring.pop_front();
        }
        self.state = Some(*state);
        Ok(())
    }
}

/// A "zip" here is a text file `SYMBOL TIMEFRAME WINDOW`; anything else is refused.
pub struct FakeLoader;

impl Loader for FakeLoader {
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: Vec<&str> = text.split_whitespace().collect();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match f.as_slice() {
            // An optional fourth word is a "version": it changes the file's identity (its
            // stand-in sha256 is the whole text) without changing the twin.
            [sym, tf, w] | [sym, tf, w, _] => Ok(Box::new(FakeTwin::new(ModelSpec {
                stream: StreamKey::parse(sym, tf)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                name,
                window: w
                    .parse()
                    .map_err(|_| format!("{}: bad window", path.display()))?,
                zip_sha256: text.trim().to_string(),
            }))),
            _ => Err(format!(
                "{}: not a model zip (no metadata comment)",
                path.display()
            )),
        }
    }
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-pred-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// A deterministic wavy price series, one bar a minute.
pub fn bars(n: usize, start: i64, seed: f64) -> Vec<Bar> {
    (0..n)
        .map(|i| {
            let x = i as f64;
            let c = 1.1 + 0.01 * (x / 7.0 + seed).sin() + 0.004 * (x / 2.3 + seed).cos();
            Bar {
                time: start + 60 * i as i64,
                open: c,
                high: c + 0.001,
                low: c - 0.001,
                close: c,
                volume: 10.0,
            }
        })
        .collect()
}

pub fn bar_line(sym: &str, tf: &str, b: &Bar, seq: u64, hist: bool) -> String {
    format!(
        "BAR|{sym}|{tf}|{}|{}|{}|{}|{}|{}|SEQ:{seq}{}",
        oracle_predictor::isotime::format(b.time),
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        if hist { "|HIST:1" } else { "" }
    )
}

/// A revision of `b` (`REV:1`), as the executor sends it when history differs from the bar it
/// sent live.
pub fn rev_line(sym: &str, tf: &str, b: &Bar, seq: u64) -> String {
    format!("{}|REV:1", bar_line(sym, tf, b, seq, false))
}

/// A trace with a later row for a time replacing the earlier one (docs/ipc.md, "Revisions").
pub fn dedup_trace(text: &str) -> String {
    let mut rows: Vec<&str> = Vec::new();
    for line in text.lines() {
        let time = line.split(',').next().unwrap_or_default();
        match rows
            .iter()
            .position(|r| r.split(',').next().unwrap_or_default() == time)
        {
            Some(at) => rows[at] = line,
            None => rows.push(line),
        }
    }
    rows.iter().map(|r| format!("{r}\n")).collect()
}
