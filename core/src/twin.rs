//! The twin: one model's rolling window, regime, policy and virtual position, fed bar by bar.

use core::borrow::BorrowMut;
use core::fmt;

use crate::bar::{Bar, BarError};
use crate::features::{self, BarSlot};
use crate::model::Model;
use crate::pass::{self, PassOut};
use crate::position::{self, Action, Position};
use crate::ring::{Ring, Window};
use crate::{
    DEFAULT_WINDOW, MAX_OBS, MAX_STATES, N_ACTIONS, N_HMM_FEATURES, N_MARKET_FEATURES, hmm, policy,
};

/// What a twin persists after every bar (§7); enough, with the last `W` bars, to restart it
/// exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwinState {
    /// Time of the last accepted bar (`None` before the first).
    pub last_bar_time: Option<i64>,
    /// Bars accepted so far.
    pub bars_seen: u64,
    /// −1, 0 or 1.
    pub position_direction: i8,
    /// 0..=3 (0 exactly when flat).
    pub position_intensity: u8,
    /// Entry price of the open position (0.0 when flat).
    pub entry_price: f64,
    /// Realised P&L so far, money.
    pub realized_pnl: f64,
    /// Positions opened so far.
    pub trades: u64,
}

impl TwinState {
    /// A twin that has seen nothing: FLAT, no P&L.
    pub const FRESH: TwinState = TwinState {
        last_bar_time: None,
        bars_seen: 0,
        position_direction: 0,
        position_intensity: 0,
        entry_price: 0.0,
        realized_pnl: 0.0,
        trades: 0,
    };
}

/// Result of a bar before the window is full: no decision, the position is held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warmup {
    /// The bar's time.
    pub time: i64,
    /// Bars held in the window, including this one.
    pub bars_held: usize,
    /// Bars still needed before the first decision.
    pub bars_needed: usize,
    /// The (unchanged) position.
    pub position: Position,
    /// Realised P&L so far.
    pub realized_pnl: f64,
}

/// Everything computed for one decided bar, for the shells, the replay trace and the goldens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The bar's time.
    pub time: i64,
    /// The chosen action.
    pub action: Action,
    /// Raw market features `[roc, atr, ema, range, volume]` (§3).
    pub market_features: [f64; N_MARKET_FEATURES],
    /// Raw HMM features `[momentum, consistency, range]` of this bar (§4).
    pub hmm_features: [f64; N_HMM_FEATURES],
    /// Forward-filtered posterior; the first `n_states` entries are used.
    pub posterior: [f64; MAX_STATES],
    /// `K`.
    pub n_states: usize,
    /// First index of the posterior's maximum.
    pub regime: usize,
    /// The observation; the first `obs_dim` entries are used.
    pub obs: [f32; MAX_OBS],
    /// `5 + K + 3`.
    pub obs_dim: usize,
    /// The policy's logits.
    pub logits: [f32; N_ACTIONS],
    /// Top-2 logit gap.
    pub margin: f32,
    /// The position before this bar's action.
    pub previous: Position,
    /// The position after this bar's action.
    pub position: Position,
    /// P&L realised by a close on this bar, if one happened.
    pub closed_pnl: Option<f64>,
    /// Whether a position was opened on this bar.
    pub opened: bool,
    /// Realised P&L so far, after this bar.
    pub realized_pnl: f64,
    /// Unrealised P&L (money, no commission) of the position after this bar's action, marked at
    /// this bar's close.
    pub unrealized_pnl: f64,
}

/// The outcome of an accepted bar.
// A Decision is a few hundred bytes returned by value: there is no heap to box it on.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The window is not full yet.
    WarmingUp(Warmup),
    /// The window is full: a decision was made and the position updated.
    Decision(Decision),
}

/// Why a twin could not be created for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinError {
    /// The model's window is longer than the twin's ring capacity `N`.
    WindowExceedsCapacity {
        /// The model's window.
        window: usize,
        /// The ring's capacity.
        capacity: usize,
    },
}

impl fmt::Display for TwinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwinError::WindowExceedsCapacity { window, capacity } => write!(
                f,
                "model window {window} exceeds the twin's capacity of {capacity} bars"
            ),
        }
    }
}

impl core::error::Error for TwinError {}

/// Why a persisted state could not be restored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestoreError {
    /// The twin cannot hold the model's window.
    Twin(TwinError),
    /// `position_direction` is not −1, 0 or 1.
    BadDirection {
        /// The value given.
        direction: i8,
    },
    /// `position_intensity` is above 3, zero for an open position, or non-zero when flat.
    BadIntensity {
        /// The direction given.
        direction: i8,
        /// The value given.
        intensity: u8,
    },
    /// The entry price is not a positive finite number (open), or not 0.0 (flat).
    BadEntryPrice {
        /// The value given.
        entry_price: f64,
    },
    /// `realized_pnl` is NaN or infinite.
    BadRealizedPnl {
        /// The value given.
        realized_pnl: f64,
    },
    /// `last_bar_time` and `bars_seen` disagree (one says no bar was seen, the other not).
    InconsistentBarCount,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Twin(e) => e.fmt(f),
            RestoreError::BadDirection { direction } => {
                write!(f, "position_direction {direction} is not -1, 0 or 1")
            }
            RestoreError::BadIntensity {
                direction,
                intensity,
            } => write!(
                f,
                "position_intensity {intensity} does not fit position_direction {direction}"
            ),
            RestoreError::BadEntryPrice { entry_price } => {
                write!(f, "entry_price {entry_price} does not fit the position")
            }
            RestoreError::BadRealizedPnl { realized_pnl } => {
                write!(f, "realized_pnl {realized_pnl} is not finite")
            }
            RestoreError::InconsistentBarCount => {
                f.write_str("last_bar_time and bars_seen disagree on whether a bar was seen")
            }
        }
    }
}

impl core::error::Error for RestoreError {}

/// Why a priming bar was refused (the twin is unchanged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrimeError {
    /// The bar itself is invalid, or not after the previous primed bar.
    Bar(BarError),
    /// The twin has no restored `last_bar_time` to prime up to (a fresh twin warms up through
    /// [`Twin::handle_bar`] instead).
    NothingToPrime,
    /// The bar is after the restored state's last bar: it must go through
    /// [`Twin::handle_bar`], which decides on it.
    AfterLastBar {
        /// The bar's time.
        time: i64,
        /// The restored state's last bar time.
        last_bar_time: i64,
    },
}

impl fmt::Display for PrimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimeError::Bar(e) => e.fmt(f),
            PrimeError::NothingToPrime => f.write_str("no restored state to prime up to"),
            PrimeError::AfterLastBar {
                time,
                last_bar_time,
            } => write!(
                f,
                "priming bar {time} is after the restored last bar {last_bar_time}"
            ),
        }
    }
}

impl core::error::Error for PrimeError {}

/// One model's digital twin with a bar ring of capacity `N` (≥ the model's window).
///
/// It borrows its [`Model`]; create it with [`Twin::new`] (fresh, FLAT) or [`Twin::restore`]
/// (from a persisted [`TwinState`], then [`Twin::prime`] with the last `W` bars), and feed it
/// closed bars with [`Twin::handle_bar`].
#[derive(Debug, Clone)]
pub struct Twin<'m, const N: usize = DEFAULT_WINDOW> {
    model: &'m Model,
    ring: Ring<BarSlot, N>,
    /// Time of the newest bar in the ring.
    ring_last_time: Option<i64>,
    /// Time of the last accepted (or restored) bar.
    last_time: Option<i64>,
    /// Raw HMM features of the newest bar in the ring.
    newest_hmm: [f64; N_HMM_FEATURES],
    /// Bars pushed into the ring so far (wrapping): names the window for `filter`.
    pushes: u64,
    /// The last window's forward filter, for the next window's (see [`hmm::forward_memo`]).
    filter: hmm::FilterMemo,
    /// The ATR and EMA of every window starting at a bar held, advanced bar by bar.
    market: pass::MarketChains<N>,
    bars_seen: u64,
    position: Position,
    realized_pnl: f64,
    trades: u64,
}

impl<'m, const N: usize> Twin<'m, N> {
    /// A fresh twin: FLAT, warming up, first decision on its `W`-th bar.
    pub fn new(model: &'m Model) -> Result<Self, TwinError> {
        // Check in a small frame, then build without an early exit (see `Model::new` on the
        // LLVM stack-probe miscompile this layout avoids).
        match check_capacity::<N>(model) {
            Ok(()) => Self::build(model, &TwinState::FRESH),
            Err(e) => Err(e),
        }
    }

    /// A twin restored from a persisted state, with an empty window: prime it with the last `W`
    /// bars up to `state.last_bar_time` ([`Twin::prime`]), then continue with
    /// [`Twin::handle_bar`]. If fewer bars are primed, it warms up again holding its position.
    pub fn restore(model: &'m Model, state: &TwinState) -> Result<Self, RestoreError> {
        match check_restore::<N>(model, state) {
            Ok(()) => Self::build(model, state),
            Err(e) => Err(e),
        }
    }

    /// A twin with an empty window and `state`'s counters and position (never fails).
    #[inline(never)]
    fn build<E>(model: &'m Model, state: &TwinState) -> Result<Self, E> {
        Ok(Twin {
            model,
            ring: Ring::new(BarSlot::ZERO),
            ring_last_time: None,
            last_time: state.last_bar_time,
            newest_hmm: [0.0; N_HMM_FEATURES],
            pushes: 0,
            filter: hmm::FilterMemo::EMPTY,
            market: pass::MarketChains::EMPTY,
            bars_seen: state.bars_seen,
            position: Position {
                direction: state.position_direction,
                intensity: state.position_intensity,
                entry_price: state.entry_price,
            },
            realized_pnl: state.realized_pnl,
            trades: state.trades,
        })
    }

    /// The state to persist after this bar (§7).
    pub fn state(&self) -> TwinState {
        TwinState {
            last_bar_time: self.last_time,
            bars_seen: self.bars_seen,
            position_direction: self.position.direction,
            position_intensity: self.position.intensity,
            entry_price: self.position.entry_price,
            realized_pnl: self.realized_pnl,
            trades: self.trades,
        }
    }

    /// Feeds one of the bars up to and including the restored `last_bar_time` into the window,
    /// without a decision and without touching the position or the counters.
    pub fn prime(&mut self, bar: Bar) -> Result<(), PrimeError> {
        let last = self.last_time.ok_or(PrimeError::NothingToPrime)?;
        bar.validate_after(self.ring_last_time)
            .map_err(PrimeError::Bar)?;
        if bar.time > last {
            return Err(PrimeError::AfterLastBar {
                time: bar.time,
                last_bar_time: last,
            });
        }
        self.push(&bar);
        Ok(())
    }

    /// Handles one closed bar: rejects it (twin unchanged), or adds it to the window and, once
    /// the window is full, decides and updates the virtual position.
    pub fn handle_bar(&mut self, bar: Bar) -> Result<Step, BarError> {
        match self.accept(&bar)? {
            Some(warmup) => Ok(Step::WarmingUp(warmup)),
            None => Ok(Step::Decision(self.decide_now(bar.time))),
        }
    }

    /// Hands one bar to each twin: `bars[i]` to `twins[i]`, the outcome in `out[i]`, for
    /// `i < min(twins.len(), bars.len(), out.len())` (that count is returned; the rest is left
    /// untouched).
    ///
    /// Every twin ends exactly as [`Twin::handle_bar`] would leave it and every outcome is the
    /// same, bit for bit; the twins are independent, so their order does not matter. (It is
    /// [`Twin::handle_bar`] on each: a twin's window recursions advance with every bar it takes,
    /// so no long chain is left to overlap across twins.)
    pub fn handle_bars(
        twins: &mut [Twin<'m, N>],
        bars: &[Bar],
        out: &mut [Result<Step, BarError>],
    ) -> usize {
        fleet(twins, bars, out)
    }

    /// [`Twin::handle_bars`] over twins held apart (each in its own box, as a shell keeps them
    /// beside their files and counters): `bars[i]` to `*twins[i]`, the same outcomes, bit for bit.
    pub fn handle_bars_mut(
        twins: &mut [&mut Twin<'m, N>],
        bars: &[Bar],
        out: &mut [Result<Step, BarError>],
    ) -> usize {
        fleet(twins, bars, out)
    }

    /// Validates the bar, pushes it and counts it; `Some` while warming up, `None` when the
    /// window is full and a decision is due.
    #[inline]
    fn accept(&mut self, bar: &Bar) -> Result<Option<Warmup>, BarError> {
        bar.validate_after(self.last_time)?;
        self.push(bar);
        self.last_time = Some(bar.time);
        self.bars_seen += 1;
        let window = self.model.window;
        if self.ring.len() < window {
            return Ok(Some(Warmup {
                time: bar.time,
                bars_held: self.ring.len(),
                bars_needed: window - self.ring.len(),
                position: self.position,
                realized_pnl: self.realized_pnl,
            }));
        }
        Ok(None)
    }

    /// The decision on the newest bar (the window is full).
    fn decide_now(&mut self, time: i64) -> Decision {
        let posterior = self.posterior();
        let (atr, ema) = self.market.get(self.model, self.pushes.wrapping_sub(1));
        let p = PassOut {
            atr,
            ema,
            posterior,
        };
        self.decide(time, &p)
    }

    /// The forward-filtered posterior at the newest bar of the full window (the filter from the
    /// window's first valid HMM bar), through the previous window's memo.
    fn posterior(&mut self) -> [f64; MAX_STATES] {
        let m = self.model;
        let w = self.ring.last(m.window).skip(m.lookback);
        hmm::forward_memo(m, w, &mut self.filter, self.pushes).0
    }

    /// Appends a bar to the ring with its HMM features and emission computed on arrival.
    fn push(&mut self, bar: &Bar) {
        let prev = self.ring.newest().map(|s| s.close);
        let slot = BarSlot {
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            emission: [0.0; MAX_STATES],
        };
        self.market.push(self.model, self.pushes, prev, &slot);
        self.pushes = self.pushes.wrapping_add(1);
        self.ring.push(BarSlot {
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            emission: [0.0; MAX_STATES],
        });
        self.ring_last_time = Some(bar.time);
        let need = self.model.lookback + 1;
        if self.ring.len() >= need {
            let raw = features::hmm_features(self.model, self.ring.last(need));
            let b = hmm::emission(self.model, &raw);
            if let Some(slot) = self.ring.newest_mut() {
                slot.emission = b;
            }
            self.newest_hmm = raw;
        } else {
            self.newest_hmm = [f64::NAN; N_HMM_FEATURES];
        }
    }

    /// The decision on the newest bar given the window's pass; the ring holds at least `W` bars.
    fn decide(&mut self, time: i64, p: &PassOut) -> Decision {
        let m = self.model;
        let w = self.ring.last(m.window);
        let close = w.at(w.len() - 1).close;

        let raw = features::market_features_with(m, w, p.atr, p.ema);
        let posterior = p.posterior;
        let regime = hmm::regime(m, &posterior);

        let previous = self.position;
        let obs = observation(m, &raw, regime, &previous, close);
        let logits = policy::logits(m, &obs);
        let index = policy::choose(&logits);
        // `choose` returns an index below N_ACTIONS, the length of `Action::ALL`.
        let action = Action::from_index(index).unwrap_or(Action::Wait);

        let t = position::apply(&m.costs, m.money_per_point, previous, action, close);
        if let Some(pnl) = t.closed_pnl {
            self.realized_pnl += pnl;
        }
        if t.opened {
            self.trades += 1;
        }
        self.position = t.position;
        let unrealized_pnl =
            position::unrealized_pnl(&m.costs, m.money_per_point, &self.position, close);

        Decision {
            time,
            action,
            market_features: raw,
            hmm_features: self.newest_hmm,
            posterior,
            n_states: m.hmm.k,
            regime,
            obs,
            obs_dim: m.obs_dim(),
            logits,
            margin: policy::margin(&logits),
            previous,
            position: self.position,
            closed_pnl: t.closed_pnl,
            opened: t.opened,
            realized_pnl: self.realized_pnl,
            unrealized_pnl,
        }
    }

    /// The model this twin runs.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The current virtual position.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Realised P&L so far.
    pub fn realized_pnl(&self) -> f64 {
        self.realized_pnl
    }

    /// Positions opened so far.
    pub fn trades(&self) -> u64 {
        self.trades
    }

    /// Bars accepted so far (restored count included).
    pub fn bars_seen(&self) -> u64 {
        self.bars_seen
    }

    /// Time of the last accepted (or restored) bar.
    pub fn last_bar_time(&self) -> Option<i64> {
        self.last_time
    }

    /// Whether the window is full, so the next bar gets a decision.
    pub fn is_ready(&self) -> bool {
        self.ring.len() >= self.model.window
    }

    /// The newest `W` bars held (fewer while warming up), oldest first.
    pub fn window(&self) -> Window<'_, BarSlot> {
        self.ring.last(self.model.window)
    }
}

/// [`Twin::handle_bars`] over any slice of twins or of borrows of them.
fn fleet<'m, const N: usize, T: BorrowMut<Twin<'m, N>>>(
    twins: &mut [T],
    bars: &[Bar],
    out: &mut [Result<Step, BarError>],
) -> usize {
    let n = twins.len().min(bars.len()).min(out.len());
    for i in 0..n {
        let twin = twins[i].borrow_mut();
        out[i] = twin.handle_bar(bars[i]);
    }
    n
}

#[inline(never)]
fn check_capacity<const N: usize>(model: &Model) -> Result<(), TwinError> {
    if model.window > N {
        return Err(TwinError::WindowExceedsCapacity {
            window: model.window,
            capacity: N,
        });
    }
    Ok(())
}

#[inline(never)]
fn check_restore<const N: usize>(model: &Model, state: &TwinState) -> Result<(), RestoreError> {
    check_capacity::<N>(model).map_err(RestoreError::Twin)?;
    let (d, i, e) = (
        state.position_direction,
        state.position_intensity,
        state.entry_price,
    );
    if !(-1..=1).contains(&d) {
        return Err(RestoreError::BadDirection { direction: d });
    }
    if i > 3 || (d == 0) != (i == 0) {
        return Err(RestoreError::BadIntensity {
            direction: d,
            intensity: i,
        });
    }
    let entry_ok = if d == 0 {
        e == 0.0
    } else {
        e.is_finite() && e > 0.0
    };
    if !entry_ok {
        return Err(RestoreError::BadEntryPrice { entry_price: e });
    }
    if !state.realized_pnl.is_finite() {
        return Err(RestoreError::BadRealizedPnl {
            realized_pnl: state.realized_pnl,
        });
    }
    if state.last_bar_time.is_some() != (state.bars_seen > 0) {
        return Err(RestoreError::InconsistentBarCount);
    }
    Ok(())
}

/// The observation (§5): every element in f64, cast to f32 once.
pub fn observation(
    model: &Model,
    raw: &[f64; N_MARKET_FEATURES],
    regime: usize,
    position: &Position,
    close: f64,
) -> [f32; MAX_OBS] {
    let clip = model.clip;
    let k = model.hmm.k;
    let mut obs = [0.0f32; MAX_OBS];
    for i in 0..N_MARKET_FEATURES {
        let z = (raw[i] - model.rl_mean[i]) / model.rl_std[i];
        obs[i] = z.max(-clip).min(clip) as f32;
    }
    if regime < k {
        obs[N_MARKET_FEATURES + regime] = 1.0;
    }
    let base = N_MARKET_FEATURES + k;
    obs[base] = f64::from(position.direction) as f32;
    obs[base + 1] = (f64::from(position.intensity) / 3.0) as f32;
    let upnl_norm = if position.is_flat() {
        0.0
    } else {
        let mark = position::close_price(&model.costs, position.direction, close);
        (f64::from(position.direction) * (mark - position.entry_price) / position.entry_price
            * 100.0)
            .max(-clip)
            .min(clip)
    };
    obs[base + 2] = upnl_norm as f32;
    obs
}
