//! `tanh` for the f32 policy, bit for bit equal to the contract's `libm::tanh(x as f64) as f32`
//! (§6), but about three times cheaper.
//!
//! The policy needs `libm::tanh` only to the nearest f32, while `libm::tanh` works to the nearest
//! f64. [`tanh_f32`] evaluates `tanh` in f64 by a short branch-free formula with a relative error
//! far below the distance between two f32 rounding boundaries, and keeps that value only when it
//! lies so far from every f32 rounding boundary (a midpoint between two adjacent f32s) that any
//! f64 within the error bound of both evaluations — its own and `libm`'s — rounds to the same
//! f32. Otherwise (about one input in 2^14, plus tiny, infinite and NaN inputs) it calls
//! `libm::tanh` itself. So the result is `libm::tanh(x as f64) as f32` by construction; the test
//! `tests/tanh.rs` checks it on samples and, `#[ignore]`d, on all 2^32 f32 bit patterns.
//!
//! The error bound: for `a = |x| ≥ 2^-100`, `tanh(a) = −m / (2 + m)` with `m = expm1(−2a)`,
//! `m = 2^n (p + 1) − 1 = 2^n·p + (2^n − 1)` with `−2a = n·ln2 + r`, `|r| ≤ ln2/2` (Cody–Waite,
//! `ln2` split so `n·LN2_HI` is exact), and `p ≈ expm1(r)` a degree-12 Taylor polynomial
//! (truncation `< (ln2/2)^12 / 13! < 2^-50` relative). `2^n·p` and `2^n − 1` are exact (for
//! `a ≤ 20`, `n ≥ −58`; below `−53` the rounding of `2^n − 1` is far below the bound for a
//! result that is 1 to f64 precision), so `m` carries a few ulp, and `y` below ~16 ulp of f64
//! (`< 2^-48` relative), i.e. below 2^5 f64 ulp of `y`'s binade (twice that at the bottom of
//! a binade). `libm::tanh` is within a few ulp as well. A value is kept only when its distance
//! from the nearest f32 midpoint exceeds [`MARGIN_ULPS`] = 2^14 f64 ulp, hundreds of times the sum
//! of both bounds. `a > 20` is evaluated as `a = 20`: there `tanh` is 1 in f64, as it is for
//! `libm` (`tanh(a) = 1 − 2e^{−2a} + …`, `2e^{−40} < 2^-54`).

/// Distance (in f64 ulp) from an f32 rounding boundary below which the slow path decides.
const MARGIN_ULPS: u64 = 1 << 14;
/// Below this `|x|` the slow path decides (keeps the fast path away from f32 subnormals).
const TINY: f64 = 7.888_609_052_210_118e-31; // 2^-100
/// `tanh(a)` is 1.0 in f64 for every `a ≥ 20` (and `libm::tanh` returns exactly 1.0 there).
const SATURATE: f64 = 20.0;
const LOG2E: f64 = core::f64::consts::LOG2_E;
/// fdlibm's split of `ln 2`: `LN2_HI` has 32 trailing zero bits, so `n * LN2_HI` is exact.
const LN2_HI: f64 = 0.693_147_180_369_123_8; // 0x3FE6_2E42_FEE0_0000
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10; // 0x3DEA_39EF_3579_3C76
/// `1.5 · 2^52`: adding it rounds an f64 of magnitude `< 2^51` to an integer (ties to even).
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `1/k!` for `k = 2 ..= 12`.
const INV_FACT: [f64; 11] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

/// The fast f64 evaluation of `tanh(|x|)` and whether it may stand for `libm`'s f32 result.
/// Branch-free, so a loop over it vectorises.
#[inline(always)]
fn fast_abs(x: f32) -> (f32, bool) {
    let a = libm::fabs(f64::from(x));
    let in_range = (TINY..=f64::MAX).contains(&a); // false for NaN and infinities
    let a = if a < SATURATE { a } else { SATURATE };
    let t = -2.0 * a; // exact
    // −2a = n·ln2 + r with n = round(−2a / ln2) ∈ [−58, 0].
    let shifted = t * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    // p = expm1(r) = r + r²·(1/2 + r·(1/6 + …)).
    let mut q = INV_FACT[10];
    let mut i = 10;
    while i > 0 {
        i -= 1;
        q = q * r + INV_FACT[i];
    }
    let p = r + (r * r) * q;
    // 2^n from the low bits of `shifted` (n's two's complement sits in its mantissa).
    let s = f64::from_bits((shifted.to_bits() << 52).wrapping_add(1023 << 52));
    let m = s * p + (s - 1.0);
    let y = -m / (2.0 + m);
    // Position of y relative to the f32 grid: the low 29 mantissa bits, 2^28 at a midpoint.
    let low = y.to_bits() & ((1 << 29) - 1);
    let far = low.abs_diff(1 << 28) > MARGIN_ULPS;
    (y as f32, in_range && far)
}

/// `libm::tanh(f64::from(x)) as f32`, bit for bit (see the module documentation).
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    let (y, ok) = fast_abs(x);
    if ok {
        if x < 0.0 { -y } else { y }
    } else {
        libm::tanh(f64::from(x)) as f32
    }
}

/// Applies [`tanh_f32`] to every element of `v`; the fast evaluations of a run of elements go
/// side by side (SIMD), the rare slow ones follow.
pub fn tanh_f32_in_place(v: &mut [f32]) {
    const CHUNK: usize = 16;
    for chunk in v.chunks_mut(CHUNK) {
        let mut x = [0.0f32; CHUNK];
        x[..chunk.len()].copy_from_slice(chunk);
        let mut y = [0.0f32; CHUNK];
        let mut ok = [false; CHUNK];
        for i in 0..CHUNK {
            let (yi, oki) = fast_abs(x[i]);
            y[i] = if x[i] < 0.0 { -yi } else { yi };
            ok[i] = oki;
        }
        for (i, out) in chunk.iter_mut().enumerate() {
            *out = if ok[i] {
                y[i]
            } else {
                libm::tanh(f64::from(x[i])) as f32
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_fdlibms() {
        assert_eq!(LN2_HI.to_bits(), 0x3FE6_2E42_FEE0_0000);
        assert_eq!(LN2_LO.to_bits(), 0x3DEA_39EF_3579_3C76);
        assert_eq!(TINY, libm::ldexp(1.0, -100));
        assert_eq!(ROUND_MAGIC, 1.5 * libm::ldexp(1.0, 52));
    }
}
