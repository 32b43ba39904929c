//! The admission rules of a round attempt, written once for the coordinator
//! (which refuses a message) and the auditor (which fails a log that
//! accepted one): who may send what in which phase.
//!
//! ```text
//! advertise-keys     admit_advert        sender allowed, once             → U1
//! share-keys         admit_shares        sender ∈ U1, once, ciphertexts for
//!                                        exactly its neighbours in the
//!                                        derived graph (U1 \ {sender} for
//!                                        the complete graph), commitments
//!                                        covering its closed neighbourhood
//!                                        (Dealt::check / check_graph)     → U2
//! epoch-shares       admit_epoch_shares  (an epoch's setup instead of
//!                                        share-keys) sender ∈ U1, once,
//!                                        ciphertexts for exactly U1 \ {sender},
//!                                        per-slot commitments covering U1
//!                                        (DealerRecord::check)            → C
//! masked-input       admit_masked_input  sender ∈ U2, once, the round's
//!                                        words, whole ring values          → U3
//!                    admit_masked_chunk  sender ∈ U2, not in U3, this
//!                                        session; chunk `index` of `total`
//!                                        in order, at the next offset, whole
//!                                        values, within the round's words;
//!                                        the last chunk ends exactly at them → U3
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

use super::epoch::{DealerRecord, Slots};
use super::plus::Neighbourhoods;
use super::{Advertisement, Dealt, PartyIndex, Phase, SecAggError, SurvivorDigest};
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
    /// A dealer addressed a share ciphertext to a member of U1 outside its
    /// neighbourhood in the round's derived (sparse) graph.
    #[error(
        "{dealer} addressed a share ciphertext to {recipient}, who is not its neighbour in the round's graph"
    )]
    ShareNotForNeighbour {
        /// The dealer.
        dealer: PartyIndex,
        /// The recipient outside its neighbourhood.
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
    /// A dealer's ciphertexts miss some of its neighbours (all other
    /// members of U1 for the complete graph).
    #[error(
        "{dealer} sent {got} share ciphertexts, one is needed for each of its {expected} neighbours in U1"
    )]
    SharesMissing {
        /// The dealer.
        dealer: PartyIndex,
        /// Ciphertexts sent.
        got: usize,
        /// Its neighbours: |U1| - 1 for the complete graph, k for a Harary graph.
        expected: usize,
        /// The neighbours it sent none to.
        missing: BTreeSet<PartyIndex>,
    },
    /// A dealer's share commitments are not one pair per member of its
    /// closed neighbourhood, all of U1 for the complete graph
    /// ([`Dealt::check`], [`Dealt::check_graph`]).
    #[error(
        "{dealer} committed to {got} pairs of shares, expected one per member of its closed neighbourhood in U1 ({expected})"
    )]
    CommitmentsNotForU1 {
        /// The dealer.
        dealer: PartyIndex,
        /// How many pairs it committed to.
        got: usize,
        /// Its closed neighbourhood's size (|U1| for the complete graph).
        expected: usize,
    },
    /// An epoch dealer's commitments are not one seed per slot and one list
    /// of per-slot share commitments per member of U1, each matching the
    /// digest it signed.
    #[error(
        "{dealer}'s epoch commitments are not one per slot ({slots}) for its seed and for each of the {members} members of U1, each list matching its signed digest"
    )]
    EpochCommitmentsMalformed {
        /// The dealer.
        dealer: PartyIndex,
        /// |U1|.
        members: usize,
        /// Slots of the epoch.
        slots: u32,
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
    /// A chunk of a masked input is signed for another session.
    #[error("{party}'s masked-input chunk is signed for another session")]
    ChunkWrongSession {
        /// The sender.
        party: PartyIndex,
    },
    /// A chunk is not the next one of its sender's stream: a repeat, a gap,
    /// another chunk count or offset than the stream so far, or a first
    /// chunk that does not start at word 0.
    #[error(
        "{party}'s masked-input chunk {index} of {total} at word {offset} is out of order \
         (expected chunk {expected_index} of {expected_total} at word {expected_offset})"
    )]
    ChunkOutOfOrder {
        /// The sender.
        party: PartyIndex,
        /// The chunk's index.
        index: u32,
        /// The chunk count it states.
        total: u32,
        /// Its first word.
        offset: usize,
        /// The index the stream expects next.
        expected_index: u32,
        /// The chunk count the stream stated (the chunk's own for a first chunk).
        expected_total: u32,
        /// The word the stream expects next.
        expected_offset: usize,
    },
    /// A chunk is empty, splits a ring value, reaches past the round's
    /// words, states more chunks than the round has values, or its last
    /// chunk does not end exactly at the round's words.
    #[error(
        "{party}'s masked-input chunk {index} of {total} has {words} words at word {offset}; \
         the round aggregates {expected} words in whole values of {limbs} limbs, \
         and only its last chunk ends at word {expected}"
    )]
    ChunkOutOfBounds {
        /// The sender.
        party: PartyIndex,
        /// The chunk's index.
        index: u32,
        /// The chunk count it states.
        total: u32,
        /// Its first word.
        offset: usize,
        /// Its words.
        words: usize,
        /// The round's words.
        expected: usize,
        /// Words per ring value.
        limbs: u32,
    },
    /// A survivor list is signed for another session than this attempt's.
    #[error("{party} signed its survivor list for another session")]
    WrongSession {
        /// The signer.
        party: PartyIndex,
    },
    /// A signed survivor list differs from U3 (its digest does).
    #[error("{party} signed a survivor list that differs from U3")]
    SurvivorListMismatch {
        /// The signer.
        party: PartyIndex,
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
/// which must be exactly its neighbours in `graph` (U1 minus `from` for the
/// complete graph), each once; and its commitments cover exactly its closed
/// neighbourhood ([`Dealt::check`] / [`Dealt::check_graph`]). `graph` is
/// the attempt's graph as the caller derived it from the thresholds, the
/// session id and U1 ([`Neighbourhoods::derive`]), never the dealer's word.
pub fn admit_shares(
    u1: &BTreeMap<PartyIndex, Advertisement>,
    graph: &Neighbourhoods,
    u2_so_far: &impl Cohort,
    from: PartyIndex,
    recipients: impl IntoIterator<Item = PartyIndex>,
    dealt: &Dealt,
) -> Result<(), AdmissionError> {
    member_once(Phase::ShareKeys, u1, u2_so_far, from)?;
    let mut neighbours = graph.closed(from);
    neighbours.remove(&from);
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
        if !neighbours.contains(&r) {
            return Err(AdmissionError::ShareNotForNeighbour {
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
    if to.len() != neighbours.len() {
        return Err(AdmissionError::SharesMissing {
            dealer: from,
            got: to.len(),
            expected: neighbours.len(),
            missing: neighbours.difference(&to).copied().collect(),
        });
    }
    let checked = match graph {
        Neighbourhoods::Complete(_) => dealt.check(from, u1),
        Neighbourhoods::Sparse(_) => dealt.check_graph(from, graph),
    };
    checked.map_err(|e| match e {
        SecAggError::ShareCommitmentsNotForU1 {
            dealer,
            got,
            expected,
        }
        | SecAggError::ShareCommitmentsNotForNeighbourhood {
            dealer,
            got,
            expected,
        } => AdmissionError::CommitmentsNotForU1 {
            dealer,
            got,
            expected,
        },
        // The two checks fail in no other way.
        _ => AdmissionError::CommitmentsNotForU1 {
            dealer: from,
            got: dealt.shares.len(),
            expected: neighbours.len() + 1,
        },
    })
}

/// Epoch setup, phase 2: `from` ∈ U1, once; its ciphertexts go to exactly
/// the other members of U1, each once; its record commits to one seed per
/// slot and, for every member of U1 (itself included), one share per slot
/// whose list matches the signed digest ([`DealerRecord::check`]). An
/// epoch's graph is always complete: every member deals to every other.
pub fn admit_epoch_shares(
    u1: &BTreeMap<PartyIndex, Advertisement>,
    u2_so_far: &impl Cohort,
    from: PartyIndex,
    recipients: impl IntoIterator<Item = PartyIndex>,
    record: &DealerRecord,
    slots: Slots,
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
    if to.len() + 1 != u1.len() {
        return Err(AdmissionError::SharesMissing {
            dealer: from,
            got: to.len(),
            expected: u1.len() - 1,
            missing: u1
                .keys()
                .filter(|p| **p != from && !to.contains(p))
                .copied()
                .collect(),
        });
    }
    record
        .check(from, u1, slots)
        .map_err(|_| AdmissionError::EpochCommitmentsMalformed {
            dealer: from,
            members: u1.len(),
            slots: slots.get(),
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

/// One chunk of a streamed masked input, as its sender signed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// 0, 1, …, `total` − 1.
    pub index: u32,
    /// Chunks in the whole input.
    pub total: u32,
    /// Its first word within the input.
    pub offset: usize,
    /// Its words.
    pub words: usize,
}

/// How far one sender's chunked masked input has come: what the next
/// chunk must be. Kept per sender by the coordinator and the auditor alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkProgress {
    /// The index the next chunk must have.
    pub next_index: u32,
    /// The chunk count the first chunk stated.
    pub total: u32,
    /// The word the next chunk must start at.
    pub next_offset: usize,
}

impl ChunkProgress {
    /// Whether every chunk has arrived (the input is whole).
    pub fn is_complete(&self) -> bool {
        self.next_index == self.total
    }
}

/// The most chunks a masked input of `words` words may be cut into: 64, or
/// one per 1,024 words if that is more. Bounds what the coordinator keeps
/// per stream (where each chunk was logged) and how many records one input
/// may add to the log: a stream of one-word chunks is refused.
pub fn max_chunks(words: usize) -> usize {
    words.div_ceil(1024).max(64)
}

/// Phase 3, streamed: `from` ∈ U2 and not yet in U3; the chunk is signed
/// for `expected_session`; it is the next chunk of the sender's stream
/// (`so_far`, `None` before its first chunk): its index, chunk count and
/// offset follow on; it holds at least one whole `ring` value and stays
/// within the round's `expected_words`; it states no more chunks than the
/// round has values, nor than [`max_chunks`]; and it ends at `expected_words` exactly when it is the
/// last. Returns the stream's progress with this chunk taken. Checked
/// before anything is allocated or added for the chunk.
#[allow(clippy::too_many_arguments)]
pub fn admit_masked_chunk(
    u2: &impl Cohort,
    u3_so_far: &impl Cohort,
    so_far: Option<&ChunkProgress>,
    from: PartyIndex,
    chunk: &ChunkHeader,
    session: &[u8],
    expected_session: &SessionId,
    expected_words: usize,
    ring: Ring,
) -> Result<ChunkProgress, AdmissionError> {
    member_once(Phase::MaskedInput, u2, u3_so_far, from)?;
    if session != expected_session.as_bytes().as_slice() {
        return Err(AdmissionError::ChunkWrongSession { party: from });
    }
    let expected = so_far.copied().unwrap_or(ChunkProgress {
        next_index: 0,
        total: chunk.total,
        next_offset: 0,
    });
    if chunk.index != expected.next_index
        || chunk.total != expected.total
        || chunk.offset != expected.next_offset
    {
        return Err(AdmissionError::ChunkOutOfOrder {
            party: from,
            index: chunk.index,
            total: chunk.total,
            offset: chunk.offset,
            expected_index: expected.next_index,
            expected_total: expected.total,
            expected_offset: expected.next_offset,
        });
    }
    let limbs = ring.limbs();
    let out_of_bounds = || AdmissionError::ChunkOutOfBounds {
        party: from,
        index: chunk.index,
        total: chunk.total,
        offset: chunk.offset,
        words: chunk.words,
        expected: expected_words,
        limbs,
    };
    // Every chunk holds at least one value, so a stream of more chunks
    // than the round has values can never be whole.
    let values = expected_words / (limbs as usize).max(1);
    let end = chunk
        .offset
        .checked_add(chunk.words)
        .ok_or_else(out_of_bounds)?;
    let last = chunk.index.checked_add(1) == Some(chunk.total);
    if chunk.words == 0
        || ring.check_len(chunk.words).is_err()
        || chunk.total as usize > values.min(max_chunks(expected_words))
        || end > expected_words
        || last != (end == expected_words)
    {
        return Err(out_of_bounds());
    }
    Ok(ChunkProgress {
        next_index: chunk.index + 1,
        total: chunk.total,
        next_offset: end,
    })
}

/// Phase 4: `from` ∈ U3, once; it signed the list digest `signed` for
/// `session`, which must be this attempt's `expected_session`, and the
/// digest must be U3's (`u3_digest`, [`SurvivorDigest::of`] U3).
pub fn admit_confirmation(
    u3: &BTreeSet<PartyIndex>,
    u3_digest: &SurvivorDigest,
    u4_so_far: &impl Cohort,
    from: PartyIndex,
    signed: &[u8],
    session: &[u8],
    expected_session: &SessionId,
) -> Result<(), AdmissionError> {
    member_once(Phase::ConsistencyCheck, u3, u4_so_far, from)?;
    if session != expected_session.as_bytes().as_slice() {
        return Err(AdmissionError::WrongSession { party: from });
    }
    if signed != u3_digest.as_bytes().as_slice() {
        return Err(AdmissionError::SurvivorListMismatch { party: from });
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

    fn header(index: u32, total: u32, offset: usize, words: usize) -> ChunkHeader {
        ChunkHeader {
            index,
            total,
            offset,
            words,
        }
    }

    /// Feeds `chunks` as one sender's stream; returns the progress, or the
    /// first refusal with its position.
    fn stream(
        chunks: &[ChunkHeader],
        words: usize,
        ring: Ring,
    ) -> Result<ChunkProgress, (usize, AdmissionError)> {
        let session = SessionId([5; 32]);
        let mut progress = None;
        for (i, c) in chunks.iter().enumerate() {
            let next = admit_masked_chunk(
                &set(&[1, 2, 3]),
                &set(&[]),
                progress.as_ref(),
                p(1),
                c,
                &[5; 32],
                &session,
                words,
                ring,
            )
            .map_err(|e| (i, e))?;
            progress = Some(next);
        }
        progress.ok_or((0, AdmissionError::Excluded { party: p(1) }))
    }

    #[test]
    fn chunks_in_order_make_a_whole_input() {
        let whole = stream(
            &[header(0, 3, 0, 4), header(1, 3, 4, 4), header(2, 3, 8, 2)],
            10,
            Ring::U64,
        )
        .expect("admitted");
        assert!(whole.is_complete());
        assert_eq!(whole.next_offset, 10);
        let partial = stream(&[header(0, 3, 0, 4)], 10, Ring::U64).expect("admitted");
        assert!(!partial.is_complete());
        // Three-limb values: chunks of whole values only.
        let wide =
            stream(&[header(0, 2, 0, 3), header(1, 2, 3, 3)], 6, Ring::U192).expect("admitted");
        assert!(wide.is_complete());
    }

    #[test]
    fn repeated_skipped_and_reshaped_chunks_are_out_of_order() {
        let first = header(0, 3, 0, 4);
        for (bad, why) in [
            (header(0, 3, 0, 4), "the first chunk again"),
            (header(2, 3, 4, 4), "a gap"),
            (header(1, 4, 4, 4), "another chunk count"),
            (header(1, 3, 5, 4), "another offset"),
        ] {
            let err = stream(&[first, bad], 12, Ring::U64).expect_err(why);
            assert!(
                matches!(err, (1, AdmissionError::ChunkOutOfOrder { .. })),
                "{why}: {err:?}"
            );
        }
        let err = stream(&[header(1, 3, 4, 4)], 12, Ring::U64).expect_err("no first chunk");
        assert!(matches!(err, (0, AdmissionError::ChunkOutOfOrder { .. })));
    }

    #[test]
    fn an_input_may_be_cut_into_at_most_max_chunks() {
        assert_eq!(max_chunks(10), 64);
        assert_eq!(max_chunks(1024 * 64 + 1), 65);
        let words = 100;
        let c = |index, offset, words| header(index, 64, offset, words);
        let mut chunks: Vec<_> = (0..63).map(|i| c(i, i as usize, 1)).collect();
        chunks.push(c(63, 63, 37));
        assert!(
            stream(&chunks, words, Ring::U64)
                .expect("64 chunks")
                .is_complete()
        );
        let err = stream(&[header(0, 65, 0, 1)], words, Ring::U64).expect_err("65");
        assert!(matches!(err, (0, AdmissionError::ChunkOutOfBounds { .. })));
    }

    #[test]
    fn oversize_short_empty_and_split_chunks_are_out_of_bounds() {
        for (chunks, why) in [
            (vec![header(0, 1, 0, 13)], "more words than the round"),
            (vec![header(0, 2, 0, 8), header(1, 2, 8, 8)], "past the end"),
            (vec![header(0, 1, 0, 8)], "a last chunk that ends short"),
            (
                vec![header(0, 2, 0, 12)],
                "the end reached before the last chunk",
            ),
            (vec![header(0, 2, 0, 0)], "an empty chunk"),
            (vec![header(0, 13, 0, 1)], "more chunks than values"),
            (vec![header(0, 65, 0, 1)], "more chunks than max_chunks"),
            (
                vec![header(0, 2, usize::MAX, 4)],
                "an offset that overflows",
            ),
        ] {
            let err = stream(&chunks, 12, Ring::U64).expect_err(why);
            assert!(
                matches!(
                    err.1,
                    AdmissionError::ChunkOutOfBounds { .. }
                        | AdmissionError::ChunkOutOfOrder { .. }
                ),
                "{why}: {err:?}"
            );
        }
        let err = stream(&[header(0, 2, 0, 4), header(1, 2, 4, 2)], 6, Ring::U192)
            .expect_err("a chunk that splits a three-limb value");
        assert!(matches!(err, (0, AdmissionError::ChunkOutOfBounds { .. })));
    }

    #[test]
    fn chunks_from_outside_u2_of_u3_or_another_session_are_refused() {
        let c = header(0, 1, 0, 4);
        let session = SessionId([5; 32]);
        let admit = |u3: &BTreeSet<PartyIndex>, from: u32, signed_for: &[u8]| {
            admit_masked_chunk(
                &set(&[1, 2]),
                u3,
                None,
                p(from),
                &c,
                signed_for,
                &session,
                4,
                Ring::U64,
            )
        };
        assert!(matches!(
            admit(&set(&[]), 3, &[5; 32]),
            Err(AdmissionError::NotInCohort { .. })
        ));
        assert!(matches!(
            admit(&set(&[1]), 1, &[5; 32]),
            Err(AdmissionError::Duplicate { .. })
        ));
        assert_eq!(
            admit(&set(&[]), 1, &[6; 32]),
            Err(AdmissionError::ChunkWrongSession { party: p(1) })
        );
        assert!(admit(&set(&[]), 1, &[5; 32]).is_ok());
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
        let g = Neighbourhoods::Complete(u1.keys().copied().collect());
        assert_eq!(admit_shares(&u1, &g, &none, p(1), [p(2), p(3)], &d), Ok(()));
        assert_eq!(
            admit_shares(&u1, &g, &none, p(4), [p(2), p(3)], &d),
            Err(AdmissionError::NotInCohort {
                phase: Phase::ShareKeys,
                party: p(4)
            })
        );
        assert_eq!(
            admit_shares(&u1, &g, &set(&[1]), p(1), [p(2), p(3)], &d),
            Err(AdmissionError::Duplicate {
                phase: Phase::ShareKeys,
                party: p(1)
            })
        );
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), [p(1), p(2)], &d),
            Err(AdmissionError::ShareToSelf { dealer: p(1) })
        );
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), [p(2), p(5)], &d),
            Err(AdmissionError::ShareNotForU1 {
                dealer: p(1),
                recipient: p(5)
            })
        );
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), [p(2), p(2)], &d),
            Err(AdmissionError::ShareTwice {
                dealer: p(1),
                recipient: p(2)
            })
        );
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), [p(2)], &d),
            Err(AdmissionError::SharesMissing {
                dealer: p(1),
                got: 1,
                expected: 2,
                missing: set(&[3]),
            })
        );
        for bad in [dealt(&[1, 2]), dealt(&[1, 2, 3, 4])] {
            assert_eq!(
                admit_shares(&u1, &g, &none, p(1), [p(2), p(3)], &bad),
                Err(AdmissionError::CommitmentsNotForU1 {
                    dealer: p(1),
                    got: bad.shares.len(),
                    expected: 3
                })
            );
        }
    }

    #[test]
    fn a_sparse_dealer_shares_with_exactly_its_derived_neighbours() {
        use crate::secagg::{CommGraph, Thresholds};
        let all: Vec<u32> = (1..=9).collect();
        let u1 = u1(&all);
        let t = Thresholds::new(9, 7, 2, 3)
            .and_then(|t| t.with_harary(9, 4, 3))
            .expect("valid");
        assert!(matches!(t.graph(), CommGraph::Harary { .. }));
        let g = Neighbourhoods::derive(&t, &SessionId([9; 32]), &u1).expect("graph");
        let none = set(&[]);
        let closed = g.closed(p(1));
        assert_eq!(closed.len(), 5);
        let mut neighbours = closed.clone();
        neighbours.remove(&p(1));
        let outsider = *u1.keys().find(|q| !closed.contains(q)).expect("k < n - 1");
        let d = Dealt {
            self_mask: [0; 32],
            shares: closed
                .iter()
                .map(|q| (*q, dealt(&[1]).shares[&p(1)]))
                .collect(),
        };
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), neighbours.iter().copied(), &d),
            Ok(())
        );
        // All of U1, as the complete graph would deal: refused at the first
        // non-neighbour.
        assert_eq!(
            admit_shares(
                &u1,
                &g,
                &none,
                p(1),
                u1.keys().copied().filter(|q| *q != p(1)),
                &d
            ),
            Err(AdmissionError::ShareNotForNeighbour {
                dealer: p(1),
                recipient: outsider,
            })
        );
        let short: Vec<PartyIndex> = neighbours.iter().copied().skip(1).collect();
        assert!(matches!(
            admit_shares(&u1, &g, &none, p(1), short, &d),
            Err(AdmissionError::SharesMissing {
                expected: 4,
                got: 3,
                ..
            })
        ));
        // Commitments over all of U1 (another graph) are refused.
        let wide = dealt(&all);
        assert_eq!(
            admit_shares(&u1, &g, &none, p(1), neighbours.iter().copied(), &wide),
            Err(AdmissionError::CommitmentsNotForU1 {
                dealer: p(1),
                got: 9,
                expected: 5
            })
        );
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
        let d3 = SurvivorDigest::of(&u3);
        let u4 = set(&[3]);
        let session = SessionId([9; 32]);
        let ok = admit_confirmation(&u3, &d3, &u4, p(1), d3.as_bytes(), &[9; 32], &session);
        assert_eq!(ok, Ok(()));
        assert_eq!(
            admit_confirmation(&u3, &d3, &u4, p(4), d3.as_bytes(), &[9; 32], &session),
            Err(AdmissionError::NotInCohort {
                phase: Phase::ConsistencyCheck,
                party: p(4)
            })
        );
        assert_eq!(
            admit_confirmation(&u3, &d3, &u4, p(3), d3.as_bytes(), &[9; 32], &session),
            Err(AdmissionError::Duplicate {
                phase: Phase::ConsistencyCheck,
                party: p(3)
            })
        );
        assert_eq!(
            admit_confirmation(&u3, &d3, &u4, p(1), d3.as_bytes(), &[8; 32], &session),
            Err(AdmissionError::WrongSession { party: p(1) })
        );
        assert_eq!(
            admit_confirmation(&u3, &d3, &u4, p(1), d3.as_bytes(), &[9; 31], &session),
            Err(AdmissionError::WrongSession { party: p(1) })
        );
        assert_eq!(
            admit_confirmation(
                &u3,
                &d3,
                &u4,
                p(1),
                SurvivorDigest::of(&set(&[1, 2])).as_bytes(),
                &[9; 32],
                &session
            ),
            Err(AdmissionError::SurvivorListMismatch { party: p(1) })
        );
        assert_eq!(
            admit_confirmation(&u3, &d3, &u4, p(1), &[0; 31], &[9; 32], &session),
            Err(AdmissionError::SurvivorListMismatch { party: p(1) })
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
