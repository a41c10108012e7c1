//! Cost of one `select` plus one `update` per strategy, for fleets of 3, 10 and 100 downstreams.
//!
//! The workload is `magnetar_core::bench` (shared with the wasm32 benchmark under Node):
//! each strategy first serves 20,000 attempts of a fleet whose success rates are spread from 50%
//! to 95%, then is measured in that warm state, which keeps evolving during the measurement. The
//! measured loop also draws the outcome (one uniform) and advances the clock by 1 ms.
//!
//! Time is the benchmark thread's CPU time, not wall time: on a machine shared with other builds
//! and tests, wall time counts the slices other processes get, CPU time only ours.
//!
//! `cargo bench -p magnetar-core --bench strategies` (add `-- thompson/` to filter).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use magnetar_core::bench::{spread_rates, step, warm_up};
use magnetar_core::strategy::StrategyKind;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use thread_cpu::ThreadCpu;

mod thread_cpu;

fn select_update(c: &mut Criterion<ThreadCpu>) {
    for kind in StrategyKind::ALL {
        let mut group = c.benchmark_group(kind.name());
        for arms in [3usize, 10, 100] {
            let rates = spread_rates(arms);
            let mut rng = SmallRng::seed_from_u64(1);
            let mut s = kind.build(arms);
            let mut now = warm_up(s.as_mut(), &rates, &mut rng);
            group.bench_function(BenchmarkId::from_parameter(arms), |b| {
                b.iter(|| {
                    now += 1;
                    step(black_box(s.as_mut()), &rates, now, &mut rng);
                })
            });
        }
        group.finish();
    }
}

/// One Beta draw on each of the sampler's two paths, and one gamma draw.
fn beta_draws(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("beta");
    let mut rng = SmallRng::seed_from_u64(2);
    group.bench_function("gamma_path_15_15", |b| {
        b.iter(|| magnetar_core::strategy::beta::sample(black_box(15.0), 15.0, &mut rng))
    });
    group.bench_function("gamma_path_300_30", |b| {
        b.iter(|| magnetar_core::strategy::beta::sample(black_box(300.0), 30.0, &mut rng))
    });
    group.bench_function("normal_path_900_100", |b| {
        b.iter(|| magnetar_core::strategy::beta::sample(black_box(900.0), 100.0, &mut rng))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = beta_draws, select_update
}
criterion_main!(benches);
