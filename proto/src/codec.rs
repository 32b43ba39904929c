//! How a round's values become u64 words for secure aggregation, and back.
//!
//! - [`Codec::Narrow`]: one word per value, clipped to ±clip (secure-sum
//!   jobs); the one-limb ring Z_(2^64);
//! - [`Codec::Wide`]: one element of Z_(2^(64·limbs)) per value, in `limbs`
//!   u64 words, never clipped, exact sums over a range of ±2^127 by default
//!   (model rounds, whose sums span from 1e-3 to beyond 1e20).
//!
//! Masks and sums are computed in [`Codec::ring`], so the published sum is
//! one ring element per value and nothing more.

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::wide::WideFixed;

use crate::WireError;
use crate::v1 as pb;

/// A round's value codec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Codec {
    /// One word per value.
    Narrow(FixedPoint),
    /// `limbs` words per value, one ring element.
    Wide(WideFixed),
}

impl Codec {
    /// The ring the encoded values, their masks and their sums live in.
    pub fn ring(&self) -> Ring {
        match self {
            Codec::Narrow(_) => Ring::U64,
            Codec::Wide(w) => w.ring(),
        }
    }

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

    /// The announcement fields: (fixed-point spec, limbs; 0 for narrow).
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
                w.limbs(),
            ),
        }
    }

    /// From the announcement fields.
    pub fn from_pb(spec: &pb::FixedPointSpec, limbs: u32) -> Result<Self, WireError> {
        Ok(if limbs == 0 {
            Codec::Narrow(FixedPoint::new(spec.frac_bits, spec.clip)?)
        } else {
            Codec::Wide(WideFixed::new(limbs, spec.frac_bits)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_fields_round_trip_and_name_the_ring() {
        let narrow = Codec::Narrow(FixedPoint::new(16, 1e6).expect("valid"));
        let wide = Codec::Wide(WideFixed::model_default());
        for (codec, limbs, ring) in [(narrow, 0, Ring::U64), (wide, 3, Ring::U192)] {
            let (spec, l) = codec.to_pb();
            assert_eq!(l, limbs);
            assert_eq!(Codec::from_pb(&spec, l).expect("valid"), codec);
            assert_eq!(codec.ring(), ring);
            assert_eq!(codec.words_for(10), 10 * ring.limbs() as usize);
        }
        // More than four limbs is no ring.
        let (spec, _) = wide.to_pb();
        assert!(Codec::from_pb(&spec, 5).is_err());
    }
}
