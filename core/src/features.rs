//! Market features (§3) and the HMM features of one bar (§4), in f64, in the contract's order.

use crate::math::{abs, seq_sum};
use crate::model::Model;
use crate::ring::Window;
use crate::{MAX_STATES, N_HMM_FEATURES, N_MARKET_FEATURES};

/// What the twin keeps of each bar: the prices the features read, and the bar's scaled HMM
/// emission computed once on arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarSlot {
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: f64,
    /// `b_k = exp(ll_k − max ll)` for `k < K` (zero past `K`); all zero while the bar had fewer
    /// than `L` predecessors, when the filter never reads it.
    pub emission: [f64; MAX_STATES],
}

impl BarSlot {
    /// An all-zero slot (storage filler).
    pub const ZERO: BarSlot = BarSlot {
        high: 0.0,
        low: 0.0,
        close: 0.0,
        volume: 0.0,
        emission: [0.0; MAX_STATES],
    };
}

/// The raw market features `[roc, atr, ema, range, volume]` at the window's last bar.
///
/// `w` must hold exactly the model's window (`W` bars); [`Model::new`] guarantees every period
/// fits in it.
pub fn market_features(model: &Model, w: Window<'_, BarSlot>) -> [f64; N_MARKET_FEATURES] {
    let p = &model.market;
    let (atr, ema) = atr_and_ema(w, p.atr, p.ema);
    market_features_with(model, w, atr, ema)
}

/// [`market_features`] given the window's last ATR and EMA values (from the window pass).
pub(crate) fn market_features_with(
    model: &Model,
    w: Window<'_, BarSlot>,
    atr: f64,
    ema: f64,
) -> [f64; N_MARKET_FEATURES] {
    let p = &model.market;
    let n = w.len() - 1;
    let c = |i: usize| w.at(i).close;
    let c_n = c(n);

    let roc = c_n / c(n - p.roc) - 1.0;
    let atr = atr / c_n;
    let ema = c_n / ema - 1.0;
    let range = range_of(w.range(n + 1 - p.range, p.range)) / c_n;

    let pv = p.volume_ma;
    let s = seq_sum(w.range(n + 1 - pv, pv).iter().map(|b| b.volume)) / pv as f64;
    let volume = if s > 0.0 {
        w.at(n).volume / s - 1.0
    } else {
        0.0
    };

    [roc, atr, ema, range, volume]
}

/// True range of window index `i ≥ 1`.
#[inline(always)]
pub(crate) fn true_range(prev_close: f64, b: &BarSlot) -> f64 {
    (b.high - b.low)
        .max(abs(b.high - prev_close))
        .max(abs(b.low - prev_close))
}

/// Wilder's ATR at the window's last bar, seeded in the window (§3).
#[cfg(test)]
fn atr(w: Window<'_, BarSlot>, period: usize) -> f64 {
    let n = w.len() - 1;
    let p = period as f64;
    let p1 = (period - 1) as f64;
    let mut it = w.iter();
    let Some(first) = it.next() else {
        return f64::NAN;
    };
    let mut prev = first.close;
    let mut seed = 0.0;
    let mut atr = 0.0;
    for (i, b) in (1..=n).zip(it) {
        let tr = true_range(prev, b);
        prev = b.close;
        if i < period {
            seed += tr;
        } else if i == period {
            seed += tr;
            atr = seed / p;
        } else {
            atr = (atr * p1 + tr) / p;
        }
    }
    atr
}

/// The EMA at the window's last bar, seeded by the SMA of the window's first `period` closes.
#[cfg(test)]
fn ema(w: Window<'_, BarSlot>, period: usize) -> f64 {
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut seed = 0.0;
    let mut e = 0.0;
    for (i, b) in w.iter().enumerate() {
        if i < period {
            seed += b.close;
            if i + 1 == period {
                e = seed / period as f64;
            }
        } else {
            e += alpha * (b.close - e);
        }
    }
    e
}

/// Wilder's ATR and the EMA in one pass, so their two dependency chains overlap (each is the
/// same sequence of operations as [`atr`] and [`ema`]).
pub(crate) fn atr_and_ema(
    w: Window<'_, BarSlot>,
    atr_period: usize,
    ema_period: usize,
) -> (f64, f64) {
    let pa = atr_period as f64;
    let pa1 = (atr_period - 1) as f64;
    let pe = ema_period as f64;
    let alpha = 2.0 / (pe + 1.0);
    let (first, second) = w.as_slices();
    let mut prev = match first.first().or(second.first()) {
        Some(b) => b.close,
        None => return (f64::NAN, f64::NAN),
    };
    let (mut atr_seed, mut atr) = (0.0, 0.0);
    let (mut ema_seed, mut e) = (0.0, 0.0);
    for (i, b) in first.iter().chain(second.iter()).enumerate() {
        if i >= 1 {
            let tr = true_range(prev, b);
            if i < atr_period {
                atr_seed += tr;
            } else if i == atr_period {
                atr_seed += tr;
                atr = atr_seed / pa;
            } else {
                atr = (atr * pa1 + tr) / pa;
            }
        }
        prev = b.close;
        if i < ema_period {
            ema_seed += b.close;
            if i + 1 == ema_period {
                e = ema_seed / pe;
            }
        } else {
            e += alpha * (b.close - e);
        }
    }
    (atr, e)
}

/// `max high − min low` over `w` (first element seeds both).
fn range_of(w: Window<'_, BarSlot>) -> f64 {
    let mut it = w.iter();
    let Some(first) = it.next() else {
        return 0.0;
    };
    let (mut hh, mut ll) = (first.high, first.low);
    for b in it {
        if b.high > hh {
            hh = b.high;
        }
        if b.low < ll {
            ll = b.low;
        }
    }
    hh - ll
}

/// The raw HMM features `[momentum, consistency, range]` of the last bar of `w`.
///
/// `w` must end at the bar and hold at least `L + 1` bars ([`Model::hmm_lookback`]).
pub fn hmm_features(model: &Model, w: Window<'_, BarSlot>) -> [f64; N_HMM_FEATURES] {
    let p = &model.hmm_periods;
    let i = w.len() - 1;
    let c = |j: usize| w.at(j).close;
    let c_i = c(i);
    let momentum = c_i / c(i - p.momentum) - 1.0;
    let mut ups = 0usize;
    for k in (i + 1 - p.consistency)..=i {
        if c(k) > c(k - 1) {
            ups += 1;
        }
    }
    let consistency = ups as f64 / p.consistency as f64;
    let range = range_of(w.range(i + 1 - p.range, p.range)) / c_i;
    [momentum, consistency, range]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(h: f64, l: f64, c: f64, v: f64) -> BarSlot {
        BarSlot {
            high: h,
            low: l,
            close: c,
            volume: v,
            emission: [0.0; MAX_STATES],
        }
    }

    #[test]
    fn atr_by_hand() {
        // closes 10, 11, 12, 11; highs c+1, lows c-1 → TR: max(2, |h-c_prev|, |l-c_prev|)
        let bars = [
            slot(11.0, 9.0, 10.0, 1.0),
            slot(12.0, 10.0, 11.0, 1.0), // TR = max(2, 2, 0) = 2
            slot(13.0, 11.0, 12.0, 1.0), // TR = max(2, 2, 0) = 2
            slot(12.0, 10.0, 11.0, 1.0), // TR = max(2, 0, 2) = 2
            slot(15.0, 11.0, 14.0, 1.0), // TR = max(4, 4, 0) = 4
        ];
        let w = Window::from_slice(&bars);
        // P = 2: seed (2 + 2) / 2 = 2; i=3: (2*1 + 2)/2 = 2; i=4: (2*1 + 4)/2 = 3
        assert_eq!(atr(w, 2), 3.0);
        // P = 4: seed (2+2+2+4)/4 = 2.5
        assert_eq!(atr(w, 4), 2.5);
        assert_eq!(atr_and_ema(w, 2, 3).0, 3.0);
    }

    #[test]
    fn ema_by_hand() {
        let bars = [
            slot(1.0, 1.0, 1.0, 0.0),
            slot(3.0, 3.0, 3.0, 0.0),
            slot(5.0, 5.0, 5.0, 0.0),
            slot(9.0, 9.0, 9.0, 0.0),
        ];
        let w = Window::from_slice(&bars);
        // P = 2: α = 2/3; E[1] = 2; E[2] = 2 + 2/3*(5-2) = 4; E[3] = 4 + 2/3*(9-4)
        let alpha = 2.0 / 3.0;
        let e2 = 2.0 + alpha * (5.0 - 2.0);
        let e3 = e2 + alpha * (9.0 - e2);
        assert_eq!(ema(w, 2), e3);
        // P = 4: plain SMA
        assert_eq!(ema(w, 4), 4.5);
        assert_eq!(atr_and_ema(w, 3, 2).1, e3);
    }

    #[test]
    fn range_by_hand() {
        let bars = [
            slot(5.0, 1.0, 2.0, 0.0),
            slot(4.0, 2.0, 3.0, 0.0),
            slot(7.0, 3.0, 4.0, 0.0),
        ];
        assert_eq!(range_of(Window::from_slice(&bars)), 6.0);
        assert_eq!(range_of(Window::from_slice(&bars[1..])), 5.0);
    }
}
