//! Cost of one contextual selection, and of one contextual select plus update, for `lin_ucb`
//! and `lin_thompson` with fleets of 3, 10 and 100 downstreams.
//!
//! The workload is `magnetar_core::bench`'s contextual one: 16 request contexts (4 path
//! classes × GET or POST × 2 callers) in turn, the best downstream depending on the path class;
//! each strategy first serves 20,000 such attempts, then is measured in that warm state. The
//! context is built once per request by the router (as here, outside the measured loop);
//! `encode` measures that encoding alone. Time is the measuring thread's CPU time.
//!
//! `cargo bench -p magnetar-core --bench contextual`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use magnetar_core::bench::{
    contextual_requests, contextual_step, contextual_warm_up, spread_rates,
};
use magnetar_core::context::RequestContext;
use magnetar_core::strategy::{SelectContext, StrategyKind};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use thread_cpu::ThreadCpu;

mod thread_cpu;

const CONTEXTUAL: [StrategyKind; 2] = [StrategyKind::LinUcb, StrategyKind::LinThompson];

fn select(c: &mut Criterion<ThreadCpu>) {
    let requests = contextual_requests();
    for kind in CONTEXTUAL {
        let mut group = c.benchmark_group(format!("{}_select", kind.name()));
        for arms in [3usize, 10, 100] {
            let rates = spread_rates(arms);
            let mut rng = SmallRng::seed_from_u64(1);
            let mut s = kind.build(arms);
            let mut now = contextual_warm_up(s.as_mut(), &rates, &requests, &mut rng);
            group.bench_function(BenchmarkId::from_parameter(arms), |b| {
                b.iter(|| {
                    now += 1;
                    let request = &requests[(now % 16) as usize];
                    let ctx = SelectContext::first(now).request(Some(request));
                    black_box(s.select(&ctx, &mut rng))
                })
            });
        }
        group.finish();
    }
}

fn select_update(c: &mut Criterion<ThreadCpu>) {
    let requests = contextual_requests();
    for kind in CONTEXTUAL {
        let mut group = c.benchmark_group(format!("{}_select_update", kind.name()));
        for arms in [3usize, 10, 100] {
            let rates = spread_rates(arms);
            let mut rng = SmallRng::seed_from_u64(1);
            let mut s = kind.build(arms);
            let mut now = contextual_warm_up(s.as_mut(), &rates, &requests, &mut rng);
            group.bench_function(BenchmarkId::from_parameter(arms), |b| {
                b.iter(|| {
                    now += 1;
                    contextual_step(black_box(s.as_mut()), &rates, &requests, now, &mut rng);
                })
            });
        }
        group.finish();
    }
}

fn encode(c: &mut Criterion<ThreadCpu>) {
    let facts = contextual_requests()[5].facts().clone();
    c.bench_function("context_encode", |b| {
        b.iter(|| RequestContext::new(black_box(facts.clone())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = encode, select, select_update
}
criterion_main!(benches);
