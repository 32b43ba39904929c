//! [`Membership`]: whose rows are in a published result, stated in every
//! model.json and metrics.json. It follows from the signed outcomes (their
//! contributor lists) and the members' signed departures alone, so the
//! coordinator, every participant and the auditor derive the same statement.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_proto::roster::Roster;
use fedcredit_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Reason given for a member that left no signed departure: it was expected
/// and did not answer (a crash, a network failure, a missed deadline).
pub const NO_ANSWER: &str = "no-answer";

/// Who is in a job's result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Members whose rows are in every published round.
    pub contributed: Vec<String>,
    /// Members whose rows are in some rounds but not from `from_round` on.
    pub dropped: Vec<Dropped>,
    /// Members whose rows are in no round.
    pub never_joined: Vec<Absent>,
}

/// A member that stopped contributing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The member.
    pub id: String,
    /// The first published round without its rows.
    pub from_round: u64,
    /// Its departure's reason code, or [`NO_ANSWER`].
    pub reason: String,
}

/// A member that contributed to no round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absent {
    /// The member.
    pub id: String,
    /// Its departure's reason code, or [`NO_ANSWER`].
    pub reason: String,
}

impl Membership {
    /// The statement for rounds whose contributor sets are `rounds` (in
    /// order), given the reason codes of the members' signed departures.
    pub fn new(
        roster: &Roster,
        rounds: &[BTreeSet<PartyIndex>],
        departures: &BTreeMap<PartyIndex, i32>,
    ) -> Self {
        let reason = |p: &PartyIndex| {
            departures
                .get(p)
                .map_or(NO_ANSWER, |code| pb::ReasonCode::label_of(*code))
                .to_owned()
        };
        let mut out = Membership::default();
        for m in roster.members() {
            let p = m.index;
            let id = m.id.to_string();
            let first = rounds.iter().position(|set| set.contains(&p));
            match first {
                None => out.never_joined.push(Absent {
                    reason: reason(&p),
                    id,
                }),
                Some(first) => match rounds[first..].iter().position(|set| !set.contains(&p)) {
                    None => out.contributed.push(id),
                    Some(gap) => out.dropped.push(Dropped {
                        from_round: (first + gap) as u64,
                        reason: reason(&p),
                        id,
                    }),
                },
            }
        }
        out
    }

    /// Whether every member contributed to every round.
    pub fn is_complete(&self) -> bool {
        self.dropped.is_empty() && self.never_joined.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::identity::IdentityKey;
    use fedcredit_proto::roster::ParticipantId;

    fn roster() -> Roster {
        let key = |i: u8| IdentityKey::from_secret_bytes(&[i; 32]).public();
        let members = ["a", "b", "c", "d"]
            .iter()
            .zip(1u8..)
            .map(|(id, i)| (ParticipantId::new(id).expect("id"), key(i)))
            .collect();
        Roster::new(members, key(0)).expect("roster")
    }

    fn set(xs: &[u32]) -> BTreeSet<PartyIndex> {
        xs.iter()
            .map(|x| PartyIndex::new(*x).expect("nonzero"))
            .collect()
    }

    #[test]
    fn states_contributors_dropouts_and_absentees_with_reasons() {
        let r = roster();
        let rounds = [set(&[1, 2, 3]), set(&[1, 2, 3]), set(&[1, 2])];
        let left = BTreeMap::from([(
            PartyIndex::new(4).expect("4"),
            pb::ReasonCode::ReasonKeyMismatch as i32,
        )]);
        let m = Membership::new(&r, &rounds, &left);
        assert_eq!(m.contributed, ["a", "b"]);
        assert_eq!(
            m.dropped,
            [Dropped {
                id: "c".into(),
                from_round: 2,
                reason: NO_ANSWER.into()
            }]
        );
        assert_eq!(
            m.never_joined,
            [Absent {
                id: "d".into(),
                reason: "key-mismatch".into()
            }]
        );
        assert!(!m.is_complete());
        let all = Membership::new(&r, &[set(&[1, 2, 3, 4])], &BTreeMap::new());
        assert!(all.is_complete());
    }
}
