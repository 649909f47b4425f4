//! The window pass: one walk over a twin's window that runs its three long recursions — Wilder's
//! ATR and the EMA (§3) and the HMM forward filter (§4) — side by side; for one twin
//! ([`pass`], used by `Twin::handle_bar`) or for 4 twins in SIMD lanes ([`pass_simd4`], used by
//! `Twin::handle_bars`).
//!
//! Each recursion is a chain of dependent floating-point operations (the forward filter's step is
//! about 50 cycles of latency and little work), so a lone chain leaves the core mostly idle.
//! Walking independent chains in one loop lets the processor overlap them, and lanes of several
//! twins share each SIMD instruction. Every chain performs exactly the operations, in exactly the
//! order, of [`crate::features::market_features`] and [`crate::hmm::forward`] — only the
//! interleaving of independent chains differs, and a SIMD lane rounds exactly like the scalar
//! instruction — so the results are the same bits (`tests/fleet.rs` compares `handle_bars` with
//! `handle_bar`, `tests/twin.rs` the twin with a naive reference).

// The lockstep loops index several per-lane arrays with one index on purpose.
#![allow(clippy::needless_range_loop)]

use crate::MAX_STATES;
use crate::features::BarSlot;
use crate::hmm;
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

/// The ATR and EMA recursions of one window; `step` is the body of
/// [`crate::features::atr_and_ema`]'s loop.
#[derive(Clone, Copy)]
struct MarketRec {
    atr_period: usize,
    pa: f64,
    pa1: f64,
    ema_period: usize,
    pe: f64,
    alpha: f64,
    prev: f64,
    atr_seed: f64,
    atr: f64,
    ema_seed: f64,
    e: f64,
}

impl MarketRec {
    fn new(model: &Model) -> MarketRec {
        let p = &model.market;
        let pe = p.ema as f64;
        MarketRec {
            atr_period: p.atr,
            pa: p.atr as f64,
            pa1: (p.atr - 1) as f64,
            ema_period: p.ema,
            pe,
            alpha: 2.0 / (pe + 1.0),
            prev: f64::NAN,
            atr_seed: 0.0,
            atr: 0.0,
            ema_seed: 0.0,
            e: 0.0,
        }
    }

    /// Window index `i`, bar `b`.
    #[inline(always)]
    fn step(&mut self, i: usize, b: &BarSlot) {
        if i >= 1 {
            let tr = crate::features::true_range(self.prev, b);
            if i < self.atr_period {
                self.atr_seed += tr;
            } else if i == self.atr_period {
                self.atr_seed += tr;
                self.atr = self.atr_seed / self.pa;
            } else {
                self.atr = (self.atr * self.pa1 + tr) / self.pa;
            }
        }
        self.prev = b.close;
        if i < self.ema_period {
            self.ema_seed += b.close;
            if i + 1 == self.ema_period {
                self.e = self.ema_seed / self.pe;
            }
        } else {
            self.e += self.alpha * (b.close - self.e);
        }
    }
}

/// The forward filter of one window with `K` states; the steps of [`crate::hmm::forward`].
#[derive(Clone, Copy)]
struct Forward<const K: usize> {
    t: [[f64; K]; K],
    start: [f64; K],
    alpha: [f64; K],
}

impl<const K: usize> Forward<K> {
    fn new(model: &Model) -> Forward<K> {
        let h = &model.hmm;
        let mut t = [[0.0; K]; K];
        for (dst, src) in t.iter_mut().zip(&h.transmat) {
            dst.copy_from_slice(&src[..K]);
        }
        let mut start = [0.0; K];
        start.copy_from_slice(&h.startprob[..K]);
        Forward {
            t,
            start,
            alpha: [0.0; K],
        }
    }

    /// The window's first valid bar: `pred = startprob`.
    #[inline(always)]
    fn first(&mut self, b: &BarSlot) {
        hmm::update::<K>(&self.start, &b.emission, &mut self.alpha);
    }

    /// Every later bar: `pred_j = Σ_k α_k t_kj` (sequential in `k`).
    #[inline(always)]
    fn step(&mut self, b: &BarSlot) {
        let pred = hmm::predict::<K>(&self.alpha, &self.t);
        hmm::update::<K>(&pred, &b.emission, &mut self.alpha);
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

/// The scalar pass over `G` windows in lockstep (used with `G = 1`). All windows have the same
/// length and all models the same HMM lookback `f < len` and `K` states.
#[inline(never)]
fn pass_k<const K: usize, const G: usize>(
    models: [&Model; G],
    ws: [Window<'_, BarSlot>; G],
) -> [PassOut; G] {
    let len = ws[0].len();
    let f = models[0].lookback;
    let mut mk: [MarketRec; G] = core::array::from_fn(|g| MarketRec::new(models[g]));
    let mut fw: [Forward<K>; G] = core::array::from_fn(|g| Forward::new(models[g]));
    // Bars before the first valid HMM bar: the market recursions only.
    for_each_run(&ws, 0, f, |from, runs| {
        for j in 0..runs[0].len() {
            for g in 0..G {
                mk[g].step(from + j, &runs[g][j]);
            }
        }
    });
    // The first valid bar starts the filter from `startprob`.
    for_each_run(&ws, f, f + 1, |from, runs| {
        for g in 0..G {
            mk[g].step(from, &runs[g][0]);
            fw[g].first(&runs[g][0]);
        }
    });
    for_each_run(&ws, f + 1, len, |from, runs| {
        let m = runs[0].len();
        let runs: [&[BarSlot]; G] = core::array::from_fn(|g| &runs[g][..m]);
        for j in 0..m {
            for g in 0..G {
                let b = &runs[g][j];
                fw[g].step(b);
                mk[g].step(from + j, b);
            }
        }
    });
    core::array::from_fn(|g| {
        let mut posterior = [0.0; MAX_STATES];
        posterior[..K].copy_from_slice(&fw[g].alpha);
        PassOut {
            atr: mk[g].atr,
            ema: mk[g].e,
            posterior,
        }
    })
}

/// Whether two twins' windows can share a lockstep pass: same window, HMM lookback, state count
/// and ATR/EMA periods, so every branch of the pass is the same for both.
pub(crate) fn compatible(a: &Model, b: &Model) -> bool {
    a.window == b.window
        && a.lookback == b.lookback
        && a.hmm.k == b.hmm.k
        && a.market.atr == b.market.atr
        && a.market.ema == b.market.ema
}

/// `[f64; L]`: one value per lane (twin). Element-wise loops over it become SIMD instructions;
/// each lane sees exactly the scalar operation sequence.
type Lanes<const L: usize> = [f64; L];

/// The pass for `L` compatible twins in SIMD lanes: the same recursions as [`pass_k`] (so the
/// same bits per twin), with every operation applied to all lanes at once.
#[inline(never)]
fn pass_lanes<const K: usize, const L: usize>(
    models: [&Model; L],
    ws: [Window<'_, BarSlot>; L],
) -> [PassOut; L] {
    let len = ws[0].len();
    let f = models[0].lookback;
    // The market constants, computed as `MarketRec::new` does (equal for compatible models).
    let mut market = MarketLanes::<L>::new(models[0]);

    // The forward filter, `t[k][j][l]` = lane `l`'s transmat[k][j].
    let mut t = [[[0.0; L]; K]; K];
    let mut start = [[0.0; L]; K];
    for l in 0..L {
        let h = &models[l].hmm;
        for k in 0..K {
            start[k][l] = h.startprob[k];
            for j in 0..K {
                t[k][j][l] = h.transmat[k][j];
            }
        }
    }
    let mut alpha = [[0.0; L]; K];
    let mut lo: Lanes<L> = [f64::INFINITY; L];
    let mut z: Lanes<L> = [0.0; L];

    for_each_run(&ws, 0, f, |from, runs| {
        for j in 0..runs[0].len() {
            market.step(from + j, &core::array::from_fn(|l| &runs[l][j]));
        }
    });
    for_each_run(&ws, f, f + 1, |from, runs| {
        let b: [&BarSlot; L] = core::array::from_fn(|l| &runs[l][0]);
        market.step(from, &b);
        update_lanes::<K, L>(&start, &b, &mut alpha, &mut lo, &mut z);
    });
    for_each_run(&ws, f + 1, len, |from, runs| {
        let m = runs[0].len();
        let runs: [&[BarSlot]; L] = core::array::from_fn(|l| &runs[l][..m]);
        for j in 0..m {
            let b: [&BarSlot; L] = core::array::from_fn(|l| &runs[l][j]);
            // pred_j = Σ_k α_k t_kj, sequential in k, from its first term (see `hmm::predict`).
            let mut pred = [[0.0; L]; K];
            for jj in 0..K {
                for l in 0..L {
                    pred[jj][l] = alpha[0][l] * t[0][jj][l];
                }
            }
            for k in 1..K {
                for jj in 0..K {
                    for l in 0..L {
                        pred[jj][l] += alpha[k][l] * t[k][jj][l];
                    }
                }
            }
            update_lanes::<K, L>(&pred, &b, &mut alpha, &mut lo, &mut z);
            market.step(from + j, &b);
        }
    });
    core::array::from_fn(|l| {
        if !(lo[l] > 0.0 && z[l] == 0.0) {
            // The filter hit `Σu ≤ 0`, ∞ or NaN on some bar of this lane (see `update_lanes`).
            let [p] = pass_k::<K, 1>([models[l]], [ws[l]]);
            return p;
        }
        let mut posterior = [0.0; MAX_STATES];
        for k in 0..K {
            posterior[k] = alpha[k][l];
        }
        PassOut {
            atr: market.atr[l],
            ema: market.e[l],
            posterior,
        }
    })
}

/// [`MarketRec`] on `L` lanes of compatible models (same periods, so the same constants and the
/// same branches in every lane).
struct MarketLanes<const L: usize> {
    c: MarketRec,
    prev: Lanes<L>,
    atr_seed: Lanes<L>,
    atr: Lanes<L>,
    ema_seed: Lanes<L>,
    e: Lanes<L>,
}

impl<const L: usize> MarketLanes<L> {
    fn new(model: &Model) -> MarketLanes<L> {
        MarketLanes {
            c: MarketRec::new(model),
            prev: [f64::NAN; L],
            atr_seed: [0.0; L],
            atr: [0.0; L],
            ema_seed: [0.0; L],
            e: [0.0; L],
        }
    }

    /// [`MarketRec::step`] on every lane: window index `i`, lane `l`'s bar `b[l]`.
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

/// [`hmm::update`]'s usual case on every lane: `α = u / Σu` with `u = pred ⊙ b`.
///
/// The other case — `Σu` not a positive finite number, where `α = pred / Σpred` — never happens
/// with real data, so instead of a test and branch per step this only keeps, per lane, the
/// smallest `Σu` seen (`lo`) and `z = Σ (Σu · 0.0)`, which is NaN from the first infinite or NaN
/// `Σu` on. A lane that ends with `!(lo > 0) || z != 0` took the other case somewhere and is
/// recomputed by the scalar pass.
#[inline(always)]
fn update_lanes<const K: usize, const L: usize>(
    pred: &[Lanes<L>; K],
    b: &[&BarSlot; L],
    alpha: &mut [Lanes<L>; K],
    lo: &mut Lanes<L>,
    z: &mut Lanes<L>,
) {
    let mut u = [[0.0; L]; K];
    for j in 0..K {
        let bj: Lanes<L> = core::array::from_fn(|l| b[l].emission[j]);
        for l in 0..L {
            u[j][l] = pred[j][l] * bj[l];
        }
    }
    let mut s = u[0];
    for uj in &u[1..] {
        for l in 0..L {
            s[l] += uj[l];
        }
    }
    for j in 0..K {
        for l in 0..L {
            alpha[j][l] = u[j][l] / s[l];
        }
    }
    for l in 0..L {
        lo[l] = if s[l] < lo[l] { s[l] } else { lo[l] };
        z[l] += s[l] * 0.0;
    }
}

/// The pass for 4 compatible twins with full windows, in SIMD lanes. (8 lanes measured a few
/// percent faster with SSE2 but need stack frames over 4 KB, which `.cargo/config.toml` says to
/// avoid; so do 4 lanes at 7 or 8 states, which run as scalar passes instead.)
pub(crate) fn pass_simd4(models: [&Model; 4], ws: [Window<'_, BarSlot>; 4]) -> [PassOut; 4] {
    match models[0].hmm.k {
        1 => pass_lanes::<1, 4>(models, ws),
        2 => pass_lanes::<2, 4>(models, ws),
        3 => pass_lanes::<3, 4>(models, ws),
        4 => pass_lanes::<4, 4>(models, ws),
        5 => pass_lanes::<5, 4>(models, ws),
        6 => pass_lanes::<6, 4>(models, ws),
        // 7 and 8 states would need frames over 4 KB: one scalar pass per twin instead.
        _ => core::array::from_fn(|l| {
            let [p] = pass([models[l]], [ws[l]]);
            p
        }),
    }
}

/// The scalar pass for `G` twins whose models are [`compatible`] and whose windows are full
/// (`W` bars); `Twin::handle_bar` uses it with `G = 1`.
pub(crate) fn pass<const G: usize>(
    models: [&Model; G],
    ws: [Window<'_, BarSlot>; G],
) -> [PassOut; G] {
    match models[0].hmm.k {
        1 => pass_k::<1, G>(models, ws),
        2 => pass_k::<2, G>(models, ws),
        3 => pass_k::<3, G>(models, ws),
        4 => pass_k::<4, G>(models, ws),
        5 => pass_k::<5, G>(models, ws),
        6 => pass_k::<6, G>(models, ws),
        7 => pass_k::<7, G>(models, ws),
        _ => pass_k::<MAX_STATES, G>(models, ws),
    }
}
