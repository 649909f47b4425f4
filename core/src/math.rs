//! Float helpers with the contract's evaluation order (`docs/contract.md`, preamble).

/// `s = 0.0; for v in values: s = s + v`, in iteration order.
#[inline]
pub(crate) fn seq_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = 0.0;
    for v in values {
        s += v;
    }
    s
}

/// First index of the maximum (`v > best` only), like numpy's `argmax` on finite input.
/// Returns 0 for an empty slice.
#[inline]
pub(crate) fn argmax_f64(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate().skip(1) {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The maximum by `v > best`, starting from the first element (numpy's `max` on finite input).
#[inline]
pub(crate) fn max_f64(values: &[f64]) -> f64 {
    let mut best = values.first().copied().unwrap_or(f64::NEG_INFINITY);
    for v in values.iter().skip(1) {
        if *v > best {
            best = *v;
        }
    }
    best
}

/// `|x|` without relying on `std`.
#[inline]
pub(crate) fn abs(x: f64) -> f64 {
    libm::fabs(x)
}
