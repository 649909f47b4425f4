//! The prop-firm guard allocates nothing per update (it runs on every spot event): counted by a
//! global allocator wrapper, per thread, in this test binary alone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use oracle_executor_core::propfirm::{Guard, Preset, Rules};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; the counter is a const-initialised
// thread-local `Cell` (no allocation, no lock).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as for `System.realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn updates_allocate_nothing_within_a_day_and_across_midnights() {
    // 2025-01-15 08:00 UTC.
    let start = 1_736_928_000_000_i64;
    let mut g = Guard::new(Rules::preset(Preset::Ftmo1Step), 100_000.0, start).unwrap();
    g.on_equity(start, 100_000.0, 100_000.0).unwrap();
    // The counter sees an allocation of this thread.
    let before = allocs();
    let probe = std::hint::black_box(vec![1_u8]);
    assert_eq!(allocs() - before, 1, "{probe:?}");
    let before = allocs();
    // A spot event every 100 ms for an hour, an open every minute: no allocation.
    for i in 0..36_000_i64 {
        let eq = 100_000.0 - (i % 500) as f64;
        let v = g.on_equity(start + i * 100, 100_000.0, eq).unwrap();
        assert!(v.breach.is_none());
        if i % 600 == 0 {
            g.on_open(start + i * 100);
        }
    }
    assert_eq!(
        allocs() - before,
        0,
        "allocations by 36,000 updates within a day"
    );
    // Five midnights crossed, one update an hour: the day boundary is recomputed from the
    // time-zone database, still without allocating.
    let before = allocs();
    for h in 1..=120_i64 {
        g.on_equity(start + h * 3_600_000, 100_000.0 + h as f64, 100_000.0)
            .unwrap();
    }
    assert_eq!(g.progress().trading_days, 1);
    assert_eq!(allocs() - before, 0, "allocations across five midnights");
}
