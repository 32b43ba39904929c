//! How contributor sets may change from one task of a job to the next.
//!
//! Two published sums over different member sets reveal, by their
//! difference, what the members in one set and not the other contributed.
//! For the *same* task that difference is exactly one member's vector, so it
//! is never allowed (each participant commits to one contributor set per
//! task in its journal). Between *different* tasks the job's
//! [`CohortPolicy`] decides, and every participant checks it before it
//! confirms a survivor list.

use std::collections::BTreeSet;

use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_proto::roster::Roster;

pub use crate::consortium::CohortPolicy;

use crate::RefereeError;

/// Members allowed to contribute to the round after `history` (the
/// contributor sets of the published rounds, in order); `None` means any
/// member of the roster.
pub fn allowed(
    policy: CohortPolicy,
    history: &[BTreeSet<PartyIndex>],
) -> Option<&BTreeSet<PartyIndex>> {
    match policy {
        CohortPolicy::Fixed => history.first(),
        CohortPolicy::Shrink => history.last(),
        CohortPolicy::Open => None,
    }
}

/// Checks that `contributors` may be the contributor set of round
/// `history.len()` under `policy`.
pub fn check(
    policy: CohortPolicy,
    history: &[BTreeSet<PartyIndex>],
    contributors: &BTreeSet<PartyIndex>,
    roster: &Roster,
) -> Result<(), RefereeError> {
    let Some(allowed_set) = allowed(policy, history) else {
        return Ok(());
    };
    let ok = match policy {
        CohortPolicy::Fixed => contributors == allowed_set,
        CohortPolicy::Shrink => contributors.is_subset(allowed_set),
        CohortPolicy::Open => true,
    };
    if ok {
        return Ok(());
    }
    let why = match policy {
        CohortPolicy::Fixed => format!(
            "every round must have exactly the first round's contributors {}",
            names(roster, allowed_set)
        ),
        _ => format!(
            "contributors may only shrink, and the previous round had {}",
            names(roster, allowed_set)
        ),
    };
    Err(RefereeError::Cohort {
        round: history.len() as u64,
        policy: policy.name(),
        got: names(roster, contributors),
        why,
    })
}

/// `[bank-a, bank-b]`, for messages.
pub fn names(roster: &Roster, set: &BTreeSet<PartyIndex>) -> String {
    let ids: Vec<String> = set.iter().map(|p| roster.name_of(*p)).collect();
    format!("[{}]", ids.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[u32]) -> BTreeSet<PartyIndex> {
        xs.iter()
            .map(|x| PartyIndex::new(*x).expect("nonzero"))
            .collect()
    }

    #[test]
    fn each_policy_allows_what_it_says() {
        let history = vec![set(&[1, 2, 3, 4]), set(&[1, 2, 3])];
        assert_eq!(
            allowed(CohortPolicy::Fixed, &history),
            Some(&set(&[1, 2, 3, 4]))
        );
        assert_eq!(
            allowed(CohortPolicy::Shrink, &history),
            Some(&set(&[1, 2, 3]))
        );
        assert_eq!(allowed(CohortPolicy::Open, &history), None);
        assert_eq!(
            allowed(CohortPolicy::Fixed, &[]),
            None,
            "the first round sets the cohort"
        );
    }
}
