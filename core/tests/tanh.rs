//! `oracle_core::tanh` must equal the contract's `libm::tanh(x as f64) as f32` bit for bit.
//!
//! The normal suite checks a spread of ~1.1 million f32 bit patterns; the `#[ignore]`d test checks
//! all 2^32 (run it in release: `cargo test --release -p oracle-core --test tanh -- --ignored`).

use oracle_core::tanh::{tanh_f32, tanh_f32_in_place};

fn reference(x: f32) -> f32 {
    libm::tanh(f64::from(x)) as f32
}

/// Checks `tanh_f32` and `tanh_f32_in_place` on the bit patterns `lo, lo + step, … < hi`;
/// returns the number of patterns checked.
fn check_range(lo: u64, hi: u64, step: u64) -> u64 {
    let mut buf = [0.0f32; 37]; // not a multiple of the in-place chunk
    let mut bits = [0u32; 37];
    let mut fill = 0;
    let mut n = 0;
    let mut b = lo;
    while b < hi {
        let x = f32::from_bits(b as u32);
        let want = reference(x).to_bits();
        assert_eq!(tanh_f32(x).to_bits(), want, "tanh_f32({x:e}) [{b:#010x}]");
        buf[fill] = x;
        bits[fill] = want;
        fill += 1;
        if fill == buf.len() {
            tanh_f32_in_place(&mut buf);
            for (v, w) in buf.iter().zip(&bits) {
                assert_eq!(v.to_bits(), *w, "tanh_f32_in_place near {b:#010x}");
            }
            fill = 0;
        }
        n += 1;
        b += step;
    }
    tanh_f32_in_place(&mut buf[..fill]);
    for (v, w) in buf[..fill].iter().zip(&bits) {
        assert_eq!(v.to_bits(), *w, "tanh_f32_in_place tail");
    }
    n
}

#[test]
fn tanh_matches_libm_on_a_spread_of_inputs() {
    // A prime stride over every bit pattern (both signs, tiny, huge, inf, NaN).
    check_range(0, 1 << 32, 4099);
    // Densely around the policy's working range, |x| in [2^-3, 2^4) (all of them near 1).
    check_range(0x3E00_0000, 0x4180_0000, 97);
    check_range(0xBE00_0000, 0xC180_0000, 101);
    for x in [
        0.0f32,
        -0.0,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        1e-30,
        1e-10,
        0.5,
        1.0,
        9.0,
        9.1,
        20.0,
        21.0,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ] {
        for v in [x, -x] {
            assert_eq!(tanh_f32(v).to_bits(), reference(v).to_bits(), "{v:e}");
        }
    }
}

#[test]
#[ignore = "exhaustive over 2^32 inputs: minutes in release"]
fn tanh_matches_libm_on_every_f32() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let per = (1u64 << 32) / threads;
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let hi = if t + 1 == threads {
                    1 << 32
                } else {
                    (t + 1) * per
                };
                s.spawn(move || check_range(t * per, hi, 1))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(total, 1 << 32);
}
