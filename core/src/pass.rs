//! The window pass's long recursions — Wilder's ATR and the EMA (§3) — kept for every window
//! still to come ([`MarketChains`]), and what the pass yields ([`PassOut`]).
//!
//! Each recursion restarts at its window's first bar (seeded in the window), so the window
//! ending at bar `n` needs a chain of about `W` dependent floating-point operations (a division
//! among them) that no earlier window's chain can stand for. But every window that will end at
//! a later bar has already started: its chain can advance as each bar arrives. So a twin keeps
//! one chain per window that starts at a bar it holds; a new bar steps all of them by one — `W`
//! independent steps that run side by side in SIMD lanes instead of one after another — and the
//! window that ends at it reads its finished chain. Each chain performs exactly the operations,
//! in exactly the order, of [`crate::features::market_features`] (`tests/twin.rs` compares the
//! twin with a naive reference bit for bit). The HMM forward filter runs per window
//! ([`crate::hmm::forward_memo`]): it usually meets the previous window's filter within a few
//! dozen bars.

use crate::MAX_STATES;
use crate::features::BarSlot;
use crate::model::Model;

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

/// The ATR and EMA chains of every window starting at one of the last `W` bars pushed:
/// `atr[s % N]` and `ema[s % N]` belong to the window whose first bar is the `s`-th pushed (from
/// 0). While a chain is seeding, its value is the seed's running sum (the contract's `seed`),
/// then the ATR or EMA itself.
#[derive(Debug, Clone)]
pub(crate) struct MarketChains<const N: usize> {
    atr: [f64; N],
    ema: [f64; N],
}

/// `f` on the chains of windows starting at bars `from ..= to` (an empty range when `from > to`),
/// each run of them contiguous in storage.
#[inline(always)]
fn each<const N: usize>(v: &mut [f64; N], from: u64, to: u64, f: impl Fn(&mut f64)) {
    if from > to {
        return;
    }
    let count = (to - from + 1) as usize;
    let start = (from % N as u64) as usize;
    let head = count.min(N - start);
    for x in &mut v[start..start + head] {
        f(x);
    }
    for x in &mut v[..count - head] {
        f(x);
    }
}

impl<const N: usize> MarketChains<N> {
    /// No chains yet.
    pub(crate) const EMPTY: MarketChains<N> = MarketChains {
        atr: [0.0; N],
        ema: [0.0; N],
    };

    /// The `a`-th bar pushed (from 0), `b`, after the bar whose close is `prev` (`None` for the
    /// first bar pushed): steps every chain of a window of `model` that holds it — at its index
    /// `i = a − s` in the window starting at bar `s` — and starts the chain of the window it
    /// starts.
    #[inline(never)]
    pub(crate) fn push(&mut self, model: &Model, a: u64, prev: Option<f64>, b: &BarSlot) {
        let p = &model.market;
        // The oldest window holding bar `a` starts at `a + 1 − W` (or at the first bar pushed).
        let oldest = (a + 1).saturating_sub(model.window as u64);
        let new = (a % N as u64) as usize;
        // The ATR: 0 at `i = 0`; the seed sums `tr` for `1 ≤ i ≤ P` and is divided at `i = P`;
        // Wilder's recursion for `i > P` (`P < W`).
        let (pa, pa1) = (p.atr as f64, (p.atr - 1) as f64);
        let pat = p.atr as u64;
        if let (Some(prev), true) = (prev, a >= 1) {
            let tr = crate::features::true_range(prev, b);
            if a > pat {
                each(&mut self.atr, oldest, a - pat - 1, |x| {
                    *x = (*x * pa1 + tr) / pa
                });
            }
            if a >= pat {
                each(&mut self.atr, a - pat, a - pat, |x| *x = (*x + tr) / pa);
            }
            if pat >= 2 {
                each(&mut self.atr, a - (pat - 1).min(a), a - 1, |x| *x += tr);
            }
        }
        self.atr[new] = 0.0;
        // The EMA: the seed sums the closes of `0 ≤ i < P` (from 0.0) and is divided at
        // `i = P − 1`; the recursion for `i ≥ P` (`P ≤ W`).
        let (pe, alpha) = (p.ema as f64, 2.0 / (p.ema as f64 + 1.0));
        let pem = p.ema as u64;
        let c = b.close;
        self.ema[new] = 0.0;
        if a >= pem {
            each(&mut self.ema, oldest, a - pem, |x| *x += alpha * (c - *x));
        }
        if a + 1 >= pem {
            each(&mut self.ema, a + 1 - pem, a + 1 - pem, |x| {
                *x = (*x + c) / pe
            });
        }
        if pem >= 2 {
            each(&mut self.ema, a - (pem - 2).min(a), a, |x| *x += c);
        }
    }

    /// `(atr, ema)` of the window of `model` ending at the `a`-th bar pushed (it holds `W` bars).
    pub(crate) fn get(&self, model: &Model, a: u64) -> (f64, f64) {
        let s = ((a + 1 - model.window as u64) % N as u64) as usize;
        (self.atr[s], self.ema[s])
    }
}
