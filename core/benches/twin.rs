//! Criterion benches of the core step: one bar through one twin, through a fleet of 20 twins of
//! 20 models (one `handle_bar` each, and `Twin::handle_bars` for 20, 200 and 1,000 twins), through
//! 20 twins of 20 models with `[256, 256]` relu actors (`bar/twenty_wide_twins`), and
//! the step broken out (FIFO push, per-bar arrival work, features, HMM forward
//! filter, MLP, action choice).
//!
//! `cargo bench -p oracle-core --bench twin` (add `-- --measurement-time 2` for a quick run).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use oracle_core::features::{self, BarSlot};
use oracle_core::ring::Ring;
use oracle_core::synthetic::{self, Bars};
use oracle_core::{Bar, BarError, Model, Step, Twin, hmm, observation, policy};

const START: i64 = 1_600_000_000;

fn models(n: usize) -> Vec<Box<Model>> {
    (0..n)
        .map(|i| {
            // The project's shape: 5 states; half diag, half full covariances.
            let p = synthetic::model_params(100 + i as u64, 5, i % 2 == 1);
            Box::new(Model::new(&p).expect("synthetic model")) as Box<Model>
        })
        .collect()
}

/// `n` models of the same shape with the widest actor the core holds: SB3 `net_arch`
/// `[256, 256]`, relu (issue 16 item 4; tests/golden/wide's policy).
fn wide_models(n: usize) -> Vec<Box<Model>> {
    (0..n)
        .map(|i| {
            let p = synthetic::model_params_with(
                100 + i as u64,
                5,
                i % 2 == 1,
                &[256, 256],
                oracle_core::Activation::Relu,
            );
            let mut m: Box<Model> = Box::new(Model::PLACEHOLDER);
            m.rebuild(&p).expect("wide synthetic model");
            m
        })
        .collect()
}

/// A twin warmed up past its window, and the rest of its bar stream.
fn warmed(model: &Model, seed: u64) -> (Twin<'_>, Bars) {
    let mut twin: Twin<'_> = Twin::new(model).expect("twin");
    let mut bars = Bars::new(seed, START);
    for _ in 0..400 {
        let _ = twin.handle_bar(bars.next().expect("infinite"));
    }
    (twin, bars)
}

fn step(twin: &mut Twin<'_>, bars: &mut Bars) -> Step {
    let bar: Bar = bars.next().expect("infinite");
    twin.handle_bar(bar).expect("valid synthetic bar")
}

fn bench_twins(c: &mut Criterion) {
    let ms = models(20);
    let mut g = c.benchmark_group("bar");
    {
        let (mut twin, mut bars) = warmed(&ms[1], 1);
        g.bench_function("one_twin", |b| {
            b.iter(|| black_box(step(&mut twin, &mut bars)))
        });
    }
    {
        let mut fleet: Vec<(Twin<'_>, Bars)> = ms
            .iter()
            .enumerate()
            .map(|(i, m)| warmed(m, i as u64))
            .collect();
        g.bench_function("twenty_twins", |b| {
            b.iter(|| {
                for (twin, bars) in fleet.iter_mut() {
                    black_box(step(twin, bars));
                }
            })
        });
    }
    // The same 20 twins with [256, 256] relu actors (compare with twenty_twins).
    let wide = wide_models(20);
    {
        let mut fleet: Vec<(Twin<'_>, Bars)> = wide
            .iter()
            .enumerate()
            .map(|(i, m)| warmed(m, i as u64))
            .collect();
        g.bench_function("twenty_wide_twins", |b| {
            b.iter(|| {
                for (twin, bars) in fleet.iter_mut() {
                    black_box(step(twin, bars));
                }
            })
        });
    }
    for n in [20, 200, 1000] {
        fleet_bench(&mut g, &ms, n);
    }
    g.finish();
}

/// One bar through `n` twins of the 20 models with [`Twin::handle_bars`] (lockstep passes).
fn fleet_bench(g: &mut BenchmarkGroup<'_, WallTime>, ms: &[Box<Model>], n: usize) {
    let (mut twins, mut feeds): (Vec<Twin<'_>>, Vec<Bars>) =
        (0..n).map(|i| warmed(&ms[i % ms.len()], i as u64)).unzip();
    let mut bars: Vec<Bar> = Vec::with_capacity(n);
    let mut out: Vec<Result<Step, BarError>> = vec![Err(BarError::Duplicate { time: 0 }); n];
    let name = match n {
        20 => "twenty_twins_handle_bars".to_string(),
        _ => format!("{n}_twins_handle_bars"),
    };
    g.bench_function(name, |b| {
        b.iter(|| {
            bars.clear();
            bars.extend(feeds.iter_mut().map(|f| f.next().expect("infinite")));
            black_box(Twin::handle_bars(&mut twins, &bars, &mut out));
            black_box(&out);
        })
    });
}

fn bench_parts(c: &mut Criterion) {
    let ms = models(2);
    let model = &ms[1];
    let (twin, mut bars) = warmed(model, 3);
    let w = twin.window();
    let lookback = model.hmm_lookback();
    let mut g = c.benchmark_group("part");

    let mut ring: Ring<BarSlot, 350> = Ring::new(BarSlot::ZERO);
    for s in w.iter() {
        ring.push(*s);
    }
    let slot = *w.at(w.len() - 1);
    g.bench_function("fifo_push", |b| b.iter(|| ring.push(black_box(slot))));

    g.bench_function("arrival_hmm_features_and_emission", |b| {
        b.iter(|| {
            let raw = features::hmm_features(model, black_box(w).skip(w.len() - lookback - 1));
            black_box(hmm::emission(model, &raw))
        })
    });
    g.bench_function("market_features", |b| {
        b.iter(|| black_box(features::market_features(model, black_box(w))))
    });
    g.bench_function("hmm_forward_filter", |b| {
        b.iter(|| black_box(hmm::forward(model, black_box(w).skip(lookback))))
    });
    let raw = features::market_features(model, w);
    let post = hmm::forward(model, w.skip(lookback));
    let regime = hmm::regime(model, &post);
    let close = w.at(w.len() - 1).close;
    let obs = observation(model, &raw, regime, &twin.position(), close);
    g.bench_function("mlp_logits", |b| {
        b.iter(|| black_box(policy::logits(model, black_box(&obs))))
    });
    // The widest actor the core holds: SB3 net_arch [256, 256], relu (issue 16 item 4).
    let wide = Box::new(synthetic::model_params_with(
        100,
        5,
        false,
        &[256, 256],
        oracle_core::Activation::Relu,
    ));
    let mut wide_model: Box<Model> = Box::new(Model::PLACEHOLDER);
    wide_model.rebuild(&wide).expect("wide synthetic model");
    g.bench_function("mlp_logits_256_256_relu", |b| {
        b.iter(|| black_box(policy::logits(&wide_model, black_box(&obs))))
    });
    let logits = policy::logits(model, &obs);
    g.bench_function("choose_action", |b| {
        b.iter(|| black_box(policy::choose(black_box(&logits))))
    });
    let _ = bars.next();
    g.finish();
}

criterion_group!(benches, bench_twins, bench_parts);
criterion_main!(benches);
