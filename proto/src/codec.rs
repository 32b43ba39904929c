//! How a round's values become u64 words for secure aggregation, and back.
//!
//! - [`Codec::Narrow`]: one word per value, clipped to ±clip (secure-sum jobs);
//! - [`Codec::Wide`]: several 32-bit digits per value, never clipped, exact
//!   sums over a range of ±2^95 (model rounds, whose sums span from 1e-3 to
//!   beyond 1e20).

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::wide::WideFixed;

use crate::WireError;
use crate::v1 as pb;

/// A round's value codec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Codec {
    /// One word per value.
    Narrow(FixedPoint),
    /// `digits` words per value.
    Wide(WideFixed),
}

impl Codec {
    /// Words needed for `values` values.
    pub fn words_for(&self, values: usize) -> usize {
        match self {
            Codec::Narrow(_) => values,
            Codec::Wide(w) => w.words_for(values),
        }
    }

    /// Checks, before any round, that `participants` inputs can be summed without wrapping.
    pub fn check(&self, participants: usize) -> Result<(), WireError> {
        match self {
            Codec::Narrow(fp) => Ok(fp.check_sum_fits(participants)?),
            Codec::Wide(w)
                if (participants as u64) < (1u64 << 32) && w.max_abs(participants) > 0.0 =>
            {
                Ok(())
            }
            Codec::Wide(_) => Err(WireError::Field {
                what: "wide codec",
                problem: format!("{participants} participants are too many for one sum"),
            }),
        }
    }

    /// Encodes one party's values for a sum over `participants` parties.
    pub fn encode(&self, values: &[f64], participants: usize) -> Result<Vec<u64>, WireError> {
        Ok(match self {
            Codec::Narrow(fp) => fp.encode_slice(values)?,
            Codec::Wide(w) => w.encode_slice(values, participants)?,
        })
    }

    /// Decodes a sum of words into values.
    pub fn decode(&self, words: &[u64]) -> Result<Vec<f64>, WireError> {
        Ok(match self {
            Codec::Narrow(fp) => fp.decode_slice(words),
            Codec::Wide(w) => w.decode_slice(words)?,
        })
    }

    /// The announcement fields: (fixed-point spec, digits).
    pub fn to_pb(&self) -> (pb::FixedPointSpec, u32) {
        match self {
            Codec::Narrow(fp) => (
                pb::FixedPointSpec {
                    frac_bits: fp.frac_bits(),
                    clip: fp.clip(),
                },
                0,
            ),
            Codec::Wide(w) => (
                pb::FixedPointSpec {
                    frac_bits: w.frac_bits(),
                    clip: 0.0,
                },
                w.digits(),
            ),
        }
    }

    /// From the announcement fields.
    pub fn from_pb(spec: &pb::FixedPointSpec, digits: u32) -> Result<Self, WireError> {
        Ok(if digits == 0 {
            Codec::Narrow(FixedPoint::new(spec.frac_bits, spec.clip)?)
        } else {
            Codec::Wide(WideFixed::new(digits, spec.frac_bits)?)
        })
    }
}
