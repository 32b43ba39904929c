//! One secure-aggregation round of N = 64 members and the aggregator, for
//! instruction counts under callgrind (which do not move with the load of a
//! shared machine):
//!
//! ```text
//! cargo build --release -p fedcredit-crypto --example secagg_round_cost
//! valgrind --tool=callgrind --toggle-collect='*per_round*' \
//!     target/release/examples/secagg_round_cost per-round 50
//! valgrind --tool=callgrind --toggle-collect='*slot_round*' \
//!     target/release/examples/secagg_round_cost epoch-slot 50
//! valgrind --tool=callgrind --toggle-collect='*drivers*setup*' \
//!     target/release/examples/secagg_round_cost epoch-setup 16
//! ```
//!
//! `per-round D` runs one round of the per-round protocol on D words;
//! `epoch-slot D` sets up an epoch (not counted with the toggle above) and
//! runs one slot; `epoch-setup R` sets up an epoch of R slots.

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::ring::Ring;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[path = "../benches/support/drivers.rs"]
mod drivers;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: secagg_round_cost per-round|epoch-slot|epoch-setup N";
    let (Some(what), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let key = IdentityKey::from_secret_bytes(&[3; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ring = Ring::U64;
    let inputs =
        |d: usize| -> Vec<Vec<u64>> { (0..drivers::N).map(|i| vec![i as u64; d]).collect() };
    match what.as_str() {
        "per-round" => drivers::per_round(&inputs(n), ring, &key, &mut rng),
        "epoch-slot" => {
            let (mut members, view) = drivers::setup(1, &key, &mut rng);
            drivers::slot_round(&mut members, &view, 0, &inputs(n), ring, &key);
        }
        "epoch-setup" => {
            let slots = u32::try_from(n).unwrap_or(u32::MAX);
            std::hint::black_box(drivers::setup(slots, &key, &mut rng));
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
