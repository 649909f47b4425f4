//! The window pass's long recursions — Wilder's ATR and the EMA (§3) — for 4 twins in SIMD
//! lanes ([`market_simd4`], used by `Twin::handle_bars`).
//!
//! Each recursion is a chain of dependent floating-point operations, so a lone chain leaves the
//! core mostly idle. Lanes of several twins share each SIMD instruction. Every lane performs
//! exactly the operations, in exactly the order, of [`crate::features::market_features`] — a
//! SIMD lane rounds exactly like the scalar instruction — so the results are the same bits
//! (`tests/fleet.rs` compares `handle_bars` with `handle_bar`, `tests/twin.rs` the twin with a
//! naive reference). The HMM forward filter runs per twin ([`crate::hmm::forward_memo`]): it
//! usually meets the previous window's filter within a few dozen bars.

// The lockstep loops index several per-lane arrays with one index on purpose.
#![allow(clippy::needless_range_loop)]

use crate::MAX_STATES;
use crate::features::BarSlot;
use crate::model::Model;
use crate::ring::Window;

/// What the pass yields for one twin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PassOut {
    /// Wilder's ATR at the window's last bar (not yet divided by the close).
    pub(crate) atr: f64,
    /// The EMA at the window's last bar.
    pub(crate) ema: f64,
    /// The forward-filtered posterior at the window's last bar (zero past `K`).
    pub(crate) posterior: [f64; MAX_STATES],
}

/// The constants of the ATR and EMA recursions, computed as
/// [`crate::features::market_features`] computes them.
#[derive(Clone, Copy)]
struct MarketConsts {
    atr_period: usize,
    pa: f64,
    pa1: f64,
    ema_period: usize,
    pe: f64,
    alpha: f64,
}

impl MarketConsts {
    fn new(model: &Model) -> MarketConsts {
        let p = &model.market;
        let pe = p.ema as f64;
        MarketConsts {
            atr_period: p.atr,
            pa: p.atr as f64,
            pa1: (p.atr - 1) as f64,
            ema_period: p.ema,
            pe,
            alpha: 2.0 / (pe + 1.0),
        }
    }
}

/// Calls `f(from, runs)` for consecutive pieces `[from, from + len)` of `[lo, hi)` such that
/// each window's piece is one contiguous slice (`runs[g]`, all of length `len`).
#[inline(always)]
fn for_each_run<'a, const G: usize>(
    ws: &[Window<'a, BarSlot>; G],
    lo: usize,
    hi: usize,
    mut f: impl FnMut(usize, [&'a [BarSlot]; G]),
) {
    let mut pos = lo;
    while pos < hi {
        let mut end = hi;
        for w in ws {
            let s = w.split();
            if s > pos && s < end {
                end = s;
            }
        }
        f(pos, core::array::from_fn(|g| ws[g].run(pos, end)));
        pos = end;
    }
}

/// Whether two twins' windows can share a lockstep pass: same window and ATR/EMA periods, so
/// every branch of the pass is the same for both.
pub(crate) fn compatible(a: &Model, b: &Model) -> bool {
    a.window == b.window && a.market.atr == b.market.atr && a.market.ema == b.market.ema
}

/// `[f64; L]`: one value per lane (twin). Element-wise loops over it become SIMD instructions;
/// each lane sees exactly the scalar operation sequence.
type Lanes<const L: usize> = [f64; L];

/// The ATR and EMA recursions on `L` lanes of compatible models (same periods, so the same
/// constants and the same branches in every lane).
struct MarketLanes<const L: usize> {
    c: MarketConsts,
    prev: Lanes<L>,
    atr_seed: Lanes<L>,
    atr: Lanes<L>,
    ema_seed: Lanes<L>,
    e: Lanes<L>,
}

impl<const L: usize> MarketLanes<L> {
    fn new(model: &Model) -> MarketLanes<L> {
        MarketLanes {
            c: MarketConsts::new(model),
            prev: [f64::NAN; L],
            atr_seed: [0.0; L],
            atr: [0.0; L],
            ema_seed: [0.0; L],
            e: [0.0; L],
        }
    }

    /// The body of [`crate::features::market_features`]'s ATR and EMA loop on every lane:
    /// window index `i`, lane `l`'s bar `b[l]`.
    #[inline(always)]
    fn step(&mut self, i: usize, b: &[&BarSlot; L]) {
        let c = &self.c;
        let close: Lanes<L> = core::array::from_fn(|l| b[l].close);
        if i >= 1 {
            let mut tr = [0.0; L];
            for l in 0..L {
                let (high, low, prev) = (b[l].high, b[l].low, self.prev[l]);
                tr[l] = (high - low)
                    .max(crate::math::abs(high - prev))
                    .max(crate::math::abs(low - prev));
            }
            if i < c.atr_period {
                for l in 0..L {
                    self.atr_seed[l] += tr[l];
                }
            } else if i == c.atr_period {
                for l in 0..L {
                    self.atr_seed[l] += tr[l];
                    self.atr[l] = self.atr_seed[l] / c.pa;
                }
            } else {
                for l in 0..L {
                    self.atr[l] = (self.atr[l] * c.pa1 + tr[l]) / c.pa;
                }
            }
        }
        self.prev = close;
        if i < c.ema_period {
            for l in 0..L {
                self.ema_seed[l] += close[l];
            }
            if i + 1 == c.ema_period {
                for l in 0..L {
                    self.e[l] = self.ema_seed[l] / c.pe;
                }
            }
        } else {
            for l in 0..L {
                self.e[l] += c.alpha * (close[l] - self.e[l]);
            }
        }
    }
}

/// The ATR and EMA (`(atr, ema)`) at the last bar of 4 [`compatible`] twins' full windows, in
/// SIMD lanes.
#[inline(never)]
pub(crate) fn market_simd4(models: [&Model; 4], ws: [Window<'_, BarSlot>; 4]) -> [(f64, f64); 4] {
    let len = ws[0].len();
    let mut market = MarketLanes::<4>::new(models[0]);
    for_each_run(&ws, 0, len, |from, runs| {
        let m = runs[0].len();
        let runs: [&[BarSlot]; 4] = core::array::from_fn(|l| &runs[l][..m]);
        for j in 0..m {
            market.step(from + j, &core::array::from_fn(|l| &runs[l][j]));
        }
    });
    core::array::from_fn(|l| (market.atr[l], market.e[l]))
}
