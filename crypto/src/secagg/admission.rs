//! The admission rules of a round attempt, written once for the coordinator
//! (which refuses a message) and the auditor (which fails a log that
//! accepted one): who may send what in which phase.
//!
//! ```text
//! advertise-keys     admit_advert        sender allowed, once             → U1
//! share-keys         admit_shares        sender ∈ U1, once, ciphertexts for
//!                                        exactly U1 \ {sender}, commitments
//!                                        covering U1 (Dealt::check)       → U2
//! masked-input       admit_masked_input  sender ∈ U2, once, the round's
//!                                        words, whole ring values          → U3
//! consistency-check  admit_confirmation  sender ∈ U3, once, this session,
//!                                        signed list = U3                  → U4
//! unmask             admit_reveal        sender ∈ U4, once, not excluded   → U5
//! ```
//!
//! Each function only checks; the caller adds the sender to its cohort when
//! the check passes, so a refused message leaves every cohort untouched.
//! The shares inside a reveal are checked by
//! [`Unmasker::accept`](super::server::Unmasker::accept).
//!
//! ```
//! use std::collections::BTreeSet;
//! use fedcredit_crypto::secagg::PartyIndex;
//! use fedcredit_crypto::secagg::admission::{admit_reveal, AdmissionError};
//!
//! let p = |i| PartyIndex::new(i).unwrap();
//! let u4: BTreeSet<_> = [p(1), p(2)].into();
//! let mut u5 = BTreeSet::new();
//! admit_reveal(&u4, &u5, &BTreeSet::new(), p(1)).unwrap();
//! u5.insert(p(1));
//! assert!(matches!(
//!     admit_reveal(&u4, &u5, &BTreeSet::new(), p(1)),
//!     Err(AdmissionError::Duplicate { .. })
//! ));
//! assert!(matches!(
//!     admit_reveal(&u4, &u5, &BTreeSet::new(), p(3)),
//!     Err(AdmissionError::NotInCohort { .. })
//! ));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::{Advertisement, Dealt, PartyIndex, Phase, SecAggError};
use crate::kx::SessionId;
use crate::ring::Ring;

/// A set of parties a rule looks up: a cohort kept as a set, or as a map
/// from each member to what it sent.
pub trait Cohort {
    /// Whether `p` is in the cohort.
    fn has(&self, p: PartyIndex) -> bool;
}

impl Cohort for BTreeSet<PartyIndex> {
    fn has(&self, p: PartyIndex) -> bool {
        self.contains(&p)
    }
}

impl<V> Cohort for BTreeMap<PartyIndex, V> {
    fn has(&self, p: PartyIndex) -> bool {
        self.contains_key(&p)
    }
}

/// Why a message is not admitted to its phase.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The sender is not in the cohort this phase accepts messages from.
    #[error("{party} is not in the cohort of phase {phase}")]
    NotInCohort {
        /// The phase.
        phase: Phase,
        /// The sender.
        party: PartyIndex,
    },
    /// The sender already sent this phase's message.
    #[error("{party} already sent its {phase} message")]
    Duplicate {
        /// The phase.
        phase: Phase,
        /// The sender.
        party: PartyIndex,
    },
    /// A revealer excluded for an earlier bad share reveals again.
    #[error("{party} was excluded from unmasking for revealing a bad share")]
    Excluded {
        /// The revealer.
        party: PartyIndex,
    },
    /// A dealer addressed a share ciphertext to itself.
    #[error("{dealer} addressed a share ciphertext to itself")]
    ShareToSelf {
        /// The dealer.
        dealer: PartyIndex,
    },
    /// A dealer addressed a share ciphertext to a party outside U1.
    #[error("{dealer} addressed a share ciphertext to {recipient}, who is not in U1")]
    ShareNotForU1 {
        /// The dealer.
        dealer: PartyIndex,
        /// The recipient outside U1.
        recipient: PartyIndex,
    },
    /// A dealer addressed two share ciphertexts to the same recipient.
    #[error("{dealer} addressed two share ciphertexts to {recipient}")]
    ShareTwice {
        /// The dealer.
        dealer: PartyIndex,
        /// The recipient named twice.
        recipient: PartyIndex,
    },
    /// A dealer's ciphertexts miss some members of U1 other than itself.
    #[error(
        "{dealer} sent {got} share ciphertexts, one is needed for each of the {expected} other members of U1"
    )]
    SharesMissing {
        /// The dealer.
        dealer: PartyIndex,
        /// Ciphertexts sent.
        got: usize,
        /// |U1| - 1.
        expected: usize,
        /// The members of U1 it sent none to.
        missing: BTreeSet<PartyIndex>,
    },
    /// A dealer's share commitments are not one pair per member of U1
    /// ([`Dealt::check`]).
    #[error(
        "{dealer} committed to {got} pairs of shares, expected one per member of U1 ({expected})"
    )]
    CommitmentsNotForU1 {
        /// The dealer.
        dealer: PartyIndex,
        /// How many pairs it committed to.
        got: usize,
        /// |U1|.
        expected: usize,
    },
    /// A masked input has another length than the round aggregates.
    #[error("{party}'s masked input has {got} words, the round aggregates {expected}")]
    WrongLength {
        /// The sender.
        party: PartyIndex,
        /// The round's words.
        expected: usize,
        /// The input's words.
        got: usize,
    },
    /// A masked input is not a whole number of the round's ring values.
    #[error("{party}'s masked input has {words} words, not whole ring values of {limbs} limbs")]
    PartialRingValue {
        /// The sender.
        party: PartyIndex,
        /// The input's words.
        words: usize,
        /// Words per ring value.
        limbs: u32,
    },
    /// A survivor list is signed for another session than this attempt's.
    #[error("{party} signed its survivor list for another session")]
    WrongSession {
        /// The signer.
        party: PartyIndex,
    },
    /// A signed survivor list differs from U3.
    #[error("{party} signed a survivor list that differs from U3")]
    SurvivorListMismatch {
        /// The signer.
        party: PartyIndex,
        /// The list it signed.
        signed: BTreeSet<PartyIndex>,
        /// U3.
        u3: BTreeSet<PartyIndex>,
    },
}

/// Sender in `cohort` (the phase before) and not yet in `so_far`.
fn member_once(
    phase: Phase,
    cohort: &impl Cohort,
    so_far: &impl Cohort,
    from: PartyIndex,
) -> Result<(), AdmissionError> {
    if !cohort.has(from) {
        return Err(AdmissionError::NotInCohort { phase, party: from });
    }
    if so_far.has(from) {
        return Err(AdmissionError::Duplicate { phase, party: from });
    }
    Ok(())
}

/// Phase 1: `from` may advertise keys if the job's cohort policy allows it
/// (`allowed`; `None`: anyone) and it has not advertised yet (`u1_so_far`).
pub fn admit_advert(
    u1_so_far: &impl Cohort,
    allowed: Option<&BTreeSet<PartyIndex>>,
    from: PartyIndex,
) -> Result<(), AdmissionError> {
    if let Some(allowed) = allowed
        && !allowed.contains(&from)
    {
        return Err(AdmissionError::NotInCohort {
            phase: Phase::AdvertiseKeys,
            party: from,
        });
    }
    if u1_so_far.has(from) {
        return Err(AdmissionError::Duplicate {
            phase: Phase::AdvertiseKeys,
            party: from,
        });
    }
    Ok(())
}

/// Phase 2: `from` ∈ U1, once; its share ciphertexts go to `recipients`,
/// which must be exactly U1 minus `from`, each once; and its commitments
/// cover exactly U1 ([`Dealt::check`]).
pub fn admit_shares(
    u1: &BTreeMap<PartyIndex, Advertisement>,
    u2_so_far: &impl Cohort,
    from: PartyIndex,
    recipients: impl IntoIterator<Item = PartyIndex>,
    dealt: &Dealt,
) -> Result<(), AdmissionError> {
    member_once(Phase::ShareKeys, u1, u2_so_far, from)?;
    let mut to = BTreeSet::new();
    for r in recipients {
        if r == from {
            return Err(AdmissionError::ShareToSelf { dealer: from });
        }
        if !u1.contains_key(&r) {
            return Err(AdmissionError::ShareNotForU1 {
                dealer: from,
                recipient: r,
            });
        }
        if !to.insert(r) {
            return Err(AdmissionError::ShareTwice {
                dealer: from,
                recipient: r,
            });
        }
    }
    let expected = u1.len().saturating_sub(1);
    if to.len() != expected {
        return Err(AdmissionError::SharesMissing {
            dealer: from,
            got: to.len(),
            expected,
            missing: u1
                .keys()
                .filter(|p| **p != from && !to.contains(p))
                .copied()
                .collect(),
        });
    }
    dealt.check(from, u1).map_err(|e| match e {
        SecAggError::ShareCommitmentsNotForU1 {
            dealer,
            got,
            expected,
        } => AdmissionError::CommitmentsNotForU1 {
            dealer,
            got,
            expected,
        },
        // `Dealt::check` fails in no other way.
        _ => AdmissionError::CommitmentsNotForU1 {
            dealer: from,
            got: dealt.shares.len(),
            expected: u1.len(),
        },
    })
}

/// Phase 3: `from` ∈ U2, once; its masked input has `words` words, the
/// round's `expected_words`, a whole number of `ring` values.
pub fn admit_masked_input(
    u2: &impl Cohort,
    u3_so_far: &impl Cohort,
    from: PartyIndex,
    words: usize,
    expected_words: usize,
    ring: Ring,
) -> Result<(), AdmissionError> {
    member_once(Phase::MaskedInput, u2, u3_so_far, from)?;
    if words != expected_words {
        return Err(AdmissionError::WrongLength {
            party: from,
            expected: expected_words,
            got: words,
        });
    }
    if ring.check_len(words).is_err() {
        return Err(AdmissionError::PartialRingValue {
            party: from,
            words,
            limbs: ring.limbs(),
        });
    }
    Ok(())
}

/// Phase 4: `from` ∈ U3, once; it signed `signed_list` for `session`,
/// which must be this attempt's `expected_session`, and the list must be U3.
pub fn admit_confirmation(
    u3: &BTreeSet<PartyIndex>,
    u4_so_far: &impl Cohort,
    from: PartyIndex,
    signed_list: &BTreeSet<PartyIndex>,
    session: &[u8],
    expected_session: &SessionId,
) -> Result<(), AdmissionError> {
    member_once(Phase::ConsistencyCheck, u3, u4_so_far, from)?;
    if session != expected_session.as_bytes().as_slice() {
        return Err(AdmissionError::WrongSession { party: from });
    }
    if signed_list != u3 {
        return Err(AdmissionError::SurvivorListMismatch {
            party: from,
            signed: signed_list.clone(),
            u3: u3.clone(),
        });
    }
    Ok(())
}

/// Phase 5: `from` ∈ U4 (confirmed the survivor list), has not revealed
/// yet (`u5_so_far`) and was not excluded for an earlier bad share.
pub fn admit_reveal(
    u4: &impl Cohort,
    u5_so_far: &impl Cohort,
    excluded: &impl Cohort,
    from: PartyIndex,
) -> Result<(), AdmissionError> {
    member_once(Phase::Unmask, u4, u5_so_far, from)?;
    if excluded.has(from) {
        return Err(AdmissionError::Excluded { party: from });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kx::AgreementSecret;
    use crate::secagg::ShareCommitment;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn p(i: u32) -> PartyIndex {
        PartyIndex::new(i).expect("nonzero")
    }

    fn set(ps: &[u32]) -> BTreeSet<PartyIndex> {
        ps.iter().map(|i| p(*i)).collect()
    }

    fn u1(ps: &[u32]) -> BTreeMap<PartyIndex, Advertisement> {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        ps.iter()
            .map(|i| {
                let ad = Advertisement {
                    share_enc: AgreementSecret::generate(&mut rng).public(),
                    mask_agree: AgreementSecret::generate(&mut rng).public(),
                };
                (p(*i), ad)
            })
            .collect()
    }

    fn dealt(ps: &[u32]) -> Dealt {
        let c = ShareCommitment {
            key: [1; 32],
            self_mask: [2; 32],
        };
        Dealt {
            self_mask: [0; 32],
            shares: ps.iter().map(|i| (p(*i), c)).collect(),
        }
    }

    #[test]
    fn advert_policy_and_duplicates() {
        let so_far = set(&[1]);
        let allowed = set(&[1, 2]);
        assert_eq!(admit_advert(&so_far, Some(&allowed), p(2)), Ok(()));
        assert_eq!(admit_advert(&so_far, None, p(9)), Ok(()));
        assert_eq!(
            admit_advert(&so_far, Some(&allowed), p(3)),
            Err(AdmissionError::NotInCohort {
                phase: Phase::AdvertiseKeys,
                party: p(3)
            })
        );
        assert_eq!(
            admit_advert(&so_far, None, p(1)),
            Err(AdmissionError::Duplicate {
                phase: Phase::AdvertiseKeys,
                party: p(1)
            })
        );
        assert_eq!(so_far, set(&[1]));
    }

    #[test]
    fn shares_go_to_exactly_the_other_members_of_u1() {
        let u1 = u1(&[1, 2, 3]);
        let none = set(&[]);
        let d = dealt(&[1, 2, 3]);
        assert_eq!(admit_shares(&u1, &none, p(1), [p(2), p(3)], &d), Ok(()));
        assert_eq!(
            admit_shares(&u1, &none, p(4), [p(2), p(3)], &d),
            Err(AdmissionError::NotInCohort {
                phase: Phase::ShareKeys,
                party: p(4)
            })
        );
        assert_eq!(
            admit_shares(&u1, &set(&[1]), p(1), [p(2), p(3)], &d),
            Err(AdmissionError::Duplicate {
                phase: Phase::ShareKeys,
                party: p(1)
            })
        );
        assert_eq!(
            admit_shares(&u1, &none, p(1), [p(1), p(2)], &d),
            Err(AdmissionError::ShareToSelf { dealer: p(1) })
        );
        assert_eq!(
            admit_shares(&u1, &none, p(1), [p(2), p(5)], &d),
            Err(AdmissionError::ShareNotForU1 {
                dealer: p(1),
                recipient: p(5)
            })
        );
        assert_eq!(
            admit_shares(&u1, &none, p(1), [p(2), p(2)], &d),
            Err(AdmissionError::ShareTwice {
                dealer: p(1),
                recipient: p(2)
            })
        );
        assert_eq!(
            admit_shares(&u1, &none, p(1), [p(2)], &d),
            Err(AdmissionError::SharesMissing {
                dealer: p(1),
                got: 1,
                expected: 2,
                missing: set(&[3]),
            })
        );
        for bad in [dealt(&[1, 2]), dealt(&[1, 2, 3, 4])] {
            assert_eq!(
                admit_shares(&u1, &none, p(1), [p(2), p(3)], &bad),
                Err(AdmissionError::CommitmentsNotForU1 {
                    dealer: p(1),
                    got: bad.shares.len(),
                    expected: 3
                })
            );
        }
    }

    #[test]
    fn masked_input_length_and_ring() {
        let u2 = set(&[1, 2]);
        let u3 = set(&[2]);
        let ring = Ring::new(3).expect("ring");
        assert_eq!(admit_masked_input(&u2, &u3, p(1), 6, 6, ring), Ok(()));
        assert_eq!(
            admit_masked_input(&u2, &u3, p(3), 6, 6, ring),
            Err(AdmissionError::NotInCohort {
                phase: Phase::MaskedInput,
                party: p(3)
            })
        );
        assert_eq!(
            admit_masked_input(&u2, &u3, p(2), 6, 6, ring),
            Err(AdmissionError::Duplicate {
                phase: Phase::MaskedInput,
                party: p(2)
            })
        );
        assert_eq!(
            admit_masked_input(&u2, &u3, p(1), 5, 6, ring),
            Err(AdmissionError::WrongLength {
                party: p(1),
                expected: 6,
                got: 5
            })
        );
        // A round whose length is not whole ring values refuses every input.
        assert_eq!(
            admit_masked_input(&u2, &u3, p(1), 4, 4, ring),
            Err(AdmissionError::PartialRingValue {
                party: p(1),
                words: 4,
                limbs: 3
            })
        );
        assert_eq!(u3, set(&[2]));
    }

    #[test]
    fn confirmation_is_bound_to_session_and_u3() {
        let u3 = set(&[1, 2, 3]);
        let u4 = set(&[3]);
        let session = SessionId([9; 32]);
        let ok = admit_confirmation(&u3, &u4, p(1), &u3, &[9; 32], &session);
        assert_eq!(ok, Ok(()));
        assert_eq!(
            admit_confirmation(&u3, &u4, p(4), &u3, &[9; 32], &session),
            Err(AdmissionError::NotInCohort {
                phase: Phase::ConsistencyCheck,
                party: p(4)
            })
        );
        assert_eq!(
            admit_confirmation(&u3, &u4, p(3), &u3, &[9; 32], &session),
            Err(AdmissionError::Duplicate {
                phase: Phase::ConsistencyCheck,
                party: p(3)
            })
        );
        assert_eq!(
            admit_confirmation(&u3, &u4, p(1), &u3, &[8; 32], &session),
            Err(AdmissionError::WrongSession { party: p(1) })
        );
        assert_eq!(
            admit_confirmation(&u3, &u4, p(1), &u3, &[9; 31], &session),
            Err(AdmissionError::WrongSession { party: p(1) })
        );
        assert_eq!(
            admit_confirmation(&u3, &u4, p(1), &set(&[1, 2]), &[9; 32], &session),
            Err(AdmissionError::SurvivorListMismatch {
                party: p(1),
                signed: set(&[1, 2]),
                u3: u3.clone(),
            })
        );
        assert_eq!(u4, set(&[3]));
    }

    #[test]
    fn reveals_only_from_u4_once_and_not_excluded() {
        let u4 = set(&[1, 2, 3]);
        let u5 = set(&[1]);
        let excluded = set(&[2]);
        assert_eq!(admit_reveal(&u4, &u5, &excluded, p(3)), Ok(()));
        assert_eq!(
            admit_reveal(&u4, &u5, &excluded, p(4)),
            Err(AdmissionError::NotInCohort {
                phase: Phase::Unmask,
                party: p(4)
            })
        );
        assert_eq!(
            admit_reveal(&u4, &u5, &excluded, p(1)),
            Err(AdmissionError::Duplicate {
                phase: Phase::Unmask,
                party: p(1)
            })
        );
        assert_eq!(
            admit_reveal(&u4, &u5, &excluded, p(2)),
            Err(AdmissionError::Excluded { party: p(2) })
        );
    }
}
