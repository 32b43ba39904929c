//! Mask throughput against the raw AES-256-CTR keystream it is built on, and
//! that keystream against ChaCha20's (the generator it replaced; the two raw
//! rates, measured in one run, are the case for the switch).
//!
//! `cargo bench -p fedcredit-crypto --bench mask -- --warm-up-time 1 --measurement-time 3`
//!
//! Target: `add_mask` runs at >= 70% of the raw keystream's bytes per second,
//! and so does `Ring::add_mask` with three limbs (model rounds), whose
//! carries between limbs must not cost much more than the wrapping add.

use std::hint::black_box;

use aes::Aes256;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctr::Ctr128BE;
use fedcredit_crypto::mask::{MaskSeed, add_mask};
use fedcredit_crypto::prg::keystream_u64;
use fedcredit_crypto::ring::{MaskSign, Ring};

/// 100,000 model weights as `u64` words.
const WORDS: usize = 100_000;
/// The same in bytes.
const BYTES: usize = WORDS * 8;
/// 33,333 three-limb values: 99,999 words, as close to `WORDS` as whole values get.
const RING_WORDS: usize = WORDS / 3 * 3;

fn keystream(c: &mut Criterion) {
    let mut group = c.benchmark_group("keystream");
    group.throughput(Throughput::Bytes(BYTES as u64));
    let seed = [7u8; 32];
    group.bench_function("chacha20_apply_keystream_800KB", |b| {
        let mut buf = vec![0u8; BYTES];
        b.iter(|| {
            let mut cipher = ChaCha20::new(&seed.into(), &[0u8; 12].into());
            cipher.apply_keystream(black_box(&mut buf));
        });
    });
    group.bench_function("aes256ctr_apply_keystream_800KB", |b| {
        let mut buf = vec![0u8; BYTES];
        b.iter(|| {
            let mut cipher = Ctr128BE::<Aes256>::new(&seed.into(), &[0u8; 16].into());
            cipher.apply_keystream(black_box(&mut buf));
        });
    });
    group.bench_function("keystream_u64_100k", |b| {
        let mut out = vec![0u64; WORDS];
        b.iter(|| keystream_u64(black_box(&seed), black_box(&mut out)));
    });
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("add_mask");
    group.throughput(Throughput::Bytes(BYTES as u64));
    let seed = MaskSeed::from_bytes([7u8; 32]);
    group.bench_function("add_mask_100k", |b| {
        let mut acc: Vec<u64> = (0..WORDS as u64).collect();
        b.iter(|| add_mask(black_box(&mut acc), &seed));
    });
    group.finish();
}

fn ring_mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_add_mask");
    group.throughput(Throughput::Bytes(RING_WORDS as u64 * 8));
    let seed = MaskSeed::from_bytes([7u8; 32]);
    for ring in [Ring::U64, Ring::U192] {
        let name = format!("{}_limbs_{}k_words", ring.limbs(), RING_WORDS / 1000);
        group.bench_function(name, |b| {
            let mut acc: Vec<u64> = (0..RING_WORDS as u64).collect();
            b.iter(|| ring.add_mask(black_box(&mut acc), &seed));
        });
    }
    group.finish();
}

/// A party's masking with 16 seeds (self + 15 pairwise), or the
/// coordinator's unmasking of 16 survivors, in one call: the vector is cut
/// into a piece per core. Throughput is keystream bytes, so against the raw
/// rate above it reads "per core" when divided by the cores used.
fn many_masks(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_masks");
    const SEEDS: usize = 16;
    group.throughput(Throughput::Bytes((BYTES * SEEDS) as u64));
    let seeds: Vec<MaskSeed> = (0..SEEDS as u8)
        .map(|i| MaskSeed::from_bytes([i; 32]))
        .collect();
    let masks: Vec<(MaskSign, &MaskSeed)> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                if i % 2 == 0 {
                    MaskSign::Add
                } else {
                    MaskSign::Sub
                },
                s,
            )
        })
        .collect();
    group.bench_function("16_seeds_100k_all_cores", |b| {
        let mut acc: Vec<u64> = (0..WORDS as u64).collect();
        b.iter(|| Ring::U64.apply_masks(black_box(&mut acc), &masks));
    });
    group.finish();
}

criterion_group!(benches, keystream, mask, ring_mask, many_masks);
criterion_main!(benches);
