//! The crate's error type.
//!
//! Every fallible function in `fedcredit-crypto` returns [`CryptoError`]. Each
//! variant's message names what was wrong so that it can be shown to an
//! operator as is.
//!
//! ```
//! use fedcredit_crypto::{CryptoError, identity::Signature};
//!
//! let err = Signature::from_bytes(&[0u8; 3]).unwrap_err();
//! assert_eq!(
//!     err,
//!     CryptoError::InvalidLength { what: "signature", expected: 64, got: 3 }
//! );
//! assert_eq!(err.to_string(), "signature must be 64 bytes, got 3");
//! ```

/// Everything that can go wrong in `fedcredit-crypto`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A byte string (a key, a signature, a share, ...) has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// The required length in bytes.
        expected: usize,
        /// The length that was given.
        got: usize,
    },

    /// A hex string could not be decoded.
    #[error("{what} is not valid hex")]
    InvalidHex {
        /// What was being decoded.
        what: &'static str,
    },

    /// An Ed25519 public key is not a canonical encoding of a curve point, or
    /// is a point of small order.
    #[error("invalid Ed25519 public key: not a canonical encoding of a point of large order")]
    InvalidPublicKey,

    /// An Ed25519 signature did not verify (strict verification).
    #[error("signature verification failed")]
    BadSignature,

    /// In a batch of signatures ([`crate::identity::verify_batch`]), the one
    /// at `index` (from 0) did not verify.
    #[error("signature {index} of the batch did not verify")]
    BadSignatureInBatch {
        /// Its position in the batch.
        index: usize,
    },

    /// X25519 produced the all-zero shared secret: the peer's public key is a
    /// low-order point, so the result would not depend on our secret.
    #[error("X25519 key agreement is non-contributory: the peer's public key is a low-order point")]
    WeakKeyAgreement,

    /// AEAD decryption failed: wrong key, wrong associated data, or the
    /// ciphertext was modified or truncated.
    #[error("decryption failed: wrong key or associated data, or the ciphertext was modified")]
    Decryption,

    /// A Shamir threshold is outside `1..=shares`.
    #[error("invalid threshold {threshold} for {shares} shares: it must be between 1 and {shares}")]
    InvalidThreshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of shares (x-coordinates) available.
        shares: usize,
    },

    /// Fewer shares than the threshold were given to reconstruct a secret.
    #[error("not enough shares to reconstruct: have {have}, need {need}")]
    NotEnoughShares {
        /// The number of shares given.
        have: usize,
        /// The threshold.
        need: usize,
    },

    /// Two shares (or two requested x-coordinates) have the same x.
    #[error("duplicate share x-coordinate {x}")]
    DuplicateShare {
        /// The repeated x-coordinate.
        x: u32,
    },

    /// A share x-coordinate is 0, the point where the secret itself lives.
    #[error("share x-coordinate 0 is not allowed (the secret is the polynomial's value at 0)")]
    ZeroShareIndex,

    /// The shares do not come from one split: an extra share is not on the
    /// polynomial through the others, or the reconstructed value is not a
    /// valid secret (a half is not below 2^128).
    #[error(
        "shares are inconsistent: they do not all lie on one polynomial of the given threshold"
    )]
    InconsistentShares,

    /// A share's encoding is malformed (the reason is given).
    #[error("invalid share encoding: {0}")]
    InvalidShare(&'static str),

    /// An input to the fixed-point codec is NaN or infinite.
    #[error("value at index {index} is not finite ({value})")]
    NotFinite {
        /// Position of the offending value in the input.
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// Fixed-point parameters are unusable (the reason is given).
    #[error("invalid fixed-point parameters: {0}")]
    InvalidFixedPoint(String),

    /// The sum of this many clipped, encoded inputs could exceed 2^63 in
    /// magnitude and so wrap modulo 2^64.
    #[error(
        "the sum of {participants} inputs clipped to ±{clip} with {frac_bits} fractional bits \
         may wrap modulo 2^64: at most {max_participants} participants fit; \
         lower frac_bits or clip, or use fewer participants"
    )]
    SumMayWrap {
        /// The number of participants that was checked.
        participants: usize,
        /// The clipping bound.
        clip: f64,
        /// The number of fractional bits.
        frac_bits: u32,
        /// The largest number of participants these settings allow.
        max_participants: u64,
    },

    /// A value for the wide codec ([`crate::wide`]) is larger in magnitude
    /// than one party may contribute: the sum over all participants could
    /// overflow the signed wide range. Values are never clipped.
    #[error(
        "value at index {index} is {value:e}, beyond the bound ±{max_abs:e}: if every \
         participant sent values this large, their sum could overflow the wide fixed-point range"
    )]
    OutOfRange {
        /// Position of the offending value in the input.
        index: usize,
        /// The offending value.
        value: f64,
        /// The largest magnitude allowed for this number of participants.
        max_abs: f64,
    },

    /// A ring ([`crate::ring::Ring`]) with an unsupported number of `u64`
    /// limbs per value.
    #[error("a ring value must have between 1 and 4 u64 limbs, got {limbs}")]
    InvalidRing {
        /// The number of limbs asked for.
        limbs: u32,
    },

    /// A vector of ring values ([`crate::ring::Ring`]) whose length is not a
    /// whole number of values: its last value would be cut.
    #[error("{words} words is not a whole number of ring values of {limbs} u64 limbs each")]
    PartialRingValue {
        /// The vector's length in words.
        words: usize,
        /// Limbs (words) per value.
        limbs: u32,
    },

    /// Two vectors that must have the same length do not.
    #[error("vector length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// The length of the accumulator.
        expected: usize,
        /// The length of the other vector.
        got: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::CryptoError;

    #[test]
    fn sum_may_wrap_message_says_what_to_lower() {
        let e = CryptoError::SumMayWrap {
            participants: 10,
            clip: 1.0,
            frac_bits: 62,
            max_participants: 1,
        };
        let msg = e.to_string();
        assert!(msg.contains("10 inputs"), "{msg}");
        assert!(msg.contains("at most 1 participants"), "{msg}");
        assert!(msg.contains("lower frac_bits or clip"), "{msg}");
    }

    #[test]
    fn out_of_range_message_names_index_value_and_bound() {
        let e = CryptoError::OutOfRange {
            index: 4,
            value: 1e30,
            max_abs: 2.5e27,
        };
        let msg = e.to_string();
        assert!(msg.contains("index 4"), "{msg}");
        assert!(msg.contains("1e30"), "{msg}");
        assert!(msg.contains("2.5e27"), "{msg}");
        assert!(msg.contains("every participant"), "{msg}");
        assert!(msg.contains("could overflow"), "{msg}");
    }

    #[test]
    fn ring_messages_name_the_limbs_and_length() {
        let e = CryptoError::InvalidRing { limbs: 5 };
        assert_eq!(
            e.to_string(),
            "a ring value must have between 1 and 4 u64 limbs, got 5"
        );
        let e = CryptoError::PartialRingValue { words: 7, limbs: 3 };
        assert_eq!(
            e.to_string(),
            "7 words is not a whole number of ring values of 3 u64 limbs each"
        );
    }

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<CryptoError>();
    }
}
