//! Cryptographic primitives for fedcredit's secure aggregation
//! (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
//! Machine Learning", CCS 2017).
//!
//! Banks train a credit-risk model together; the coordinator must learn only
//! the sum of their updates. This crate provides the building blocks, with
//! every byte encoding fixed and documented so that an auditor can reproduce
//! any key, share, mask and sum bit for bit with independent tools. It is
//! pure and synchronous: no I/O, no async, no global RNG (every random value
//! comes from an `R: CryptoRng + RngCore` passed in).
//!
//! Layout:
//!
//! - [`identity`]: Ed25519 identity keys; context-prefixed, strictly
//!   verified signatures and the [`identity::SignatureChecked`] proof.
//! - [`kx`]: X25519 key agreement and HKDF-SHA256 derivation of per-purpose,
//!   per-session, per-pair keys.
//! - [`aead`]: ChaCha20-Poly1305 for encrypting Shamir shares.
//! - [`shamir`]: t-of-n sharing of 32-byte secrets over the Curve25519
//!   scalar field.
//! - [`prg`]: the AES-256-CTR keystream as `u64` words.
//! - [`mask`]: adding and removing masks with wrapping arithmetic.
//! - [`ring`]: the ring Z_(2^(64·L)) of multi-limb values (carries between
//!   the limbs of a value): masks, inputs and sums of the wide codec.
//! - [`fixed_point`]: the `f64` ↔ `u64` (mod 2^64) codec, with clipping and a
//!   no-wrap check for sums.
//! - [`wide`]: the `f64` ↔ ring-element codec (a signed big integer of
//!   64·L bits in `L` `u64` limbs) for statistics whose range does not fit
//!   one word; never clips, and sums within its range decode exactly.
//! - [`secagg`]: the secure-aggregation protocol logic (client and server
//!   sides), built on the modules above.
//! - [`error`]: [`CryptoError`], the single error type.
//!
//! No cipher, hash, KDF or field arithmetic is implemented here: they come
//! from the dalek and RustCrypto crates, pinned in the workspace.
//!
//! ```
//! use fedcredit_crypto::{fixed_point::FixedPoint, mask::{add_assign, add_mask, sub_mask, MaskSeed}};
//!
//! let fp = FixedPoint::new(20, 1.0)?;
//! let seed = MaskSeed::generate(&mut rand::rngs::OsRng);
//! let mut a = fp.encode_slice(&[0.25, -0.5])?;
//! let mut b = fp.encode_slice(&[0.5, 0.125])?;
//! add_mask(&mut a, &seed);
//! sub_mask(&mut b, &seed);
//! add_assign(&mut a, &b)?;
//! assert_eq!(fp.decode_slice(&a), vec![0.75, -0.375]);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

#![forbid(unsafe_code)]

pub mod aead;
pub mod error;
pub mod fixed_point;
pub mod identity;
pub mod kx;
pub mod mask;
pub mod prg;
pub mod ring;
pub mod secagg;
pub mod shamir;
pub mod wide;

pub use error::CryptoError;
