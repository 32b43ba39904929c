//! Hot path of a Newton round: one party's gradient + Hessian sums.
//!
//! `cargo bench -p fedcredit-model --bench newton_terms`

use criterion::{Criterion, criterion_group, criterion_main};
use fedcredit_model::logistic::local_newton_terms;
use fedcredit_model::synthetic::{generate, known_beta};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("local_newton_terms");
    group.sample_size(10);
    for (n, p) in [(100_000, 50), (1_000_000, 50)] {
        let beta = known_beta(p);
        let (x, y) = generate(n, p, &beta, 1).expect("synthetic data");
        let at: Vec<f64> = beta.iter().map(|b| 0.5 * b).collect();
        group.bench_function(format!("n={n} p={p}"), |b| {
            b.iter(|| local_newton_terms(black_box(x.view()), black_box(y.view()), black_box(&at)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
