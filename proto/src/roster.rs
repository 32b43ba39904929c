//! Who is in the consortium: participant ids, their Shamir indices (1-based
//! positions in id order, so every party derives the same ones) and their
//! Ed25519 identity keys, plus the coordinator's key.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::identity::IdentityPublic;
use fedcredit_crypto::secagg::PartyIndex;

use crate::WireError;

/// A participant's id as written in the consortium file (e.g. `bank-a`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ParticipantId(String);

impl ParticipantId {
    /// Validates an id: 1–64 characters of `[A-Za-z0-9._-]`.
    pub fn new(id: &str) -> Result<Self, WireError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(WireError::Field {
                what: "participant id",
                problem: format!("{id:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"),
            });
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ids order exactly like their strings, so maps can be searched by `&str`.
impl std::borrow::Borrow<str> for ParticipantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One consortium member.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its id.
    pub id: ParticipantId,
    /// Its Shamir x-coordinate and mask order.
    pub index: PartyIndex,
    /// Its long-term identity key, which signs all its messages.
    pub key: IdentityPublic,
}

/// The consortium's members and the coordinator's key.
#[derive(Clone, Debug)]
pub struct Roster {
    by_id: BTreeMap<ParticipantId, Member>,
    by_index: BTreeMap<PartyIndex, ParticipantId>,
    coordinator: IdentityPublic,
}

impl Roster {
    /// Builds the roster; indices follow the sorted ids. Ids and keys must be unique.
    pub fn new(
        members: Vec<(ParticipantId, IdentityPublic)>,
        coordinator: IdentityPublic,
    ) -> Result<Self, WireError> {
        let mut sorted = members;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut by_id = BTreeMap::new();
        let mut by_index = BTreeMap::new();
        let mut keys = std::collections::BTreeSet::new();
        for (i, (id, key)) in sorted.into_iter().enumerate() {
            let position = u32::try_from(i + 1).map_err(|_| WireError::Field {
                what: "participants",
                problem: "too many participants".into(),
            })?;
            let index = PartyIndex::new(position).map_err(|e| WireError::Field {
                what: "participant index",
                problem: e.to_string(),
            })?;
            if !keys.insert(key) || key == coordinator {
                return Err(WireError::Field {
                    what: "participants",
                    problem: format!("the public key of {id} is used twice"),
                });
            }
            if by_id.contains_key(&id) {
                return Err(WireError::Field {
                    what: "participants",
                    problem: format!("id {id} is listed twice"),
                });
            }
            by_index.insert(index, id.clone());
            by_id.insert(id.clone(), Member { id, index, key });
        }
        Ok(Self {
            by_id,
            by_index,
            coordinator,
        })
    }

    /// The member with this id.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.by_id.get(id)
    }

    /// The member with this id, or an error naming it.
    pub fn member(&self, id: &str) -> Result<&Member, WireError> {
        self.get(id)
            .ok_or_else(|| WireError::UnknownSender(id.to_owned()))
    }

    /// The members a list of ids names, as a set of indices: an id that is
    /// not a member, or one named twice, is refused (`what` says which list).
    pub fn indices(
        &self,
        what: &'static str,
        ids: &[String],
    ) -> Result<BTreeSet<PartyIndex>, WireError> {
        let mut set = BTreeSet::new();
        for id in ids {
            let m = self.get(id).ok_or_else(|| WireError::Field {
                what,
                problem: format!("{id:?} is not a consortium member"),
            })?;
            if !set.insert(m.index) {
                return Err(WireError::Field {
                    what,
                    problem: format!("{id} is named twice"),
                });
            }
        }
        Ok(set)
    }

    /// The id at this index.
    pub fn id_of(&self, index: PartyIndex) -> Option<&ParticipantId> {
        self.by_index.get(&index)
    }

    /// The id at this index as text for messages and logs, or `#n` for an
    /// index outside the roster: the one party-name lookup every crate uses.
    pub fn name_of(&self, index: PartyIndex) -> String {
        self.id_of(index)
            .map_or_else(|| index.to_string(), ToString::to_string)
    }

    /// All members in index order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.by_index.values().filter_map(|id| self.by_id.get(id))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True if there are no members.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The coordinator's identity key.
    pub fn coordinator(&self) -> &IdentityPublic {
        &self.coordinator
    }
}
