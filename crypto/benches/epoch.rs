//! What setting up once per cohort saves per round: the protocol CPU of one
//! round of N = 64 members and the aggregator together (one process, no
//! transport) for the per-round protocol (advertise, share, mask, confirm,
//! unmask: fresh keys every round) against one slot of a set-up epoch
//! (mask, unmask), and the epoch's one-off setup. Wall time, so only the
//! ratios within one run mean anything on a shared machine; for counts that
//! do not move with its load, run the `secagg_round_cost` example under
//! callgrind.
//!
//! `cargo bench -p fedcredit-crypto --bench epoch -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::ring::Ring;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[path = "support/drivers.rs"]
mod drivers;

use drivers::{N, per_round, setup, slot_round};

fn rounds(c: &mut Criterion) {
    let key = IdentityKey::from_secret_bytes(&[3; 32]);
    let ring = Ring::U64;
    let mut group = c.benchmark_group("secagg_round_n64");
    group.sample_size(10);
    for d in [50usize, 100_000] {
        let inputs: Vec<Vec<u64>> = (0..N).map(|i| vec![i as u64; d]).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        group.bench_with_input(BenchmarkId::new("per_round_protocol", d), &d, |b, _| {
            b.iter(|| per_round(&inputs, ring, &key, &mut rng));
        });
        // Enough slots for every iteration criterion runs; a fresh setup
        // (untimed) when they run out.
        group.bench_with_input(BenchmarkId::new("epoch_slot", d), &d, |b, _| {
            let (mut members, mut view) = setup(64, &key, &mut rng);
            let mut slot = 0u32;
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    if slot == 64 {
                        (members, view) = setup(64, &key, &mut rng);
                        slot = 0;
                    }
                    let start = std::time::Instant::now();
                    slot_round(&mut members, &view, slot, &inputs, ring, &key);
                    total += start.elapsed();
                    slot += 1;
                }
                total
            });
        });
    }
    for slots in [1u32, 16] {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        group.bench_with_input(
            BenchmarkId::new("epoch_setup_slots", slots),
            &slots,
            |b, s| {
                b.iter(|| black_box(setup(*s, &key, &mut rng)));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, rounds);
criterion_main!(benches);
