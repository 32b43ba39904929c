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
use crate::consortium::JobSpec;

use crate::RefereeError;

/// Members allowed to contribute to the round after `history` (the
/// contributor sets of the published rounds, in order); `None` means any
/// member of the roster. With `require_all_members`, every member.
pub fn allowed(
    job: &JobSpec,
    roster: &Roster,
    history: &[BTreeSet<PartyIndex>],
) -> Option<BTreeSet<PartyIndex>> {
    if job.require_all_members {
        return Some(roster.members().map(|m| m.index).collect());
    }
    match job.cohort {
        CohortPolicy::Fixed => history.first().cloned(),
        CohortPolicy::Shrink => history.last().cloned(),
        CohortPolicy::Open => None,
    }
}

/// The exact contributor set the next round must have, if the job fixes
/// one (`require_all_members`, or the fixed policy after the first round).
pub fn exact(
    job: &JobSpec,
    roster: &Roster,
    history: &[BTreeSet<PartyIndex>],
) -> Option<BTreeSet<PartyIndex>> {
    match job.cohort {
        _ if job.require_all_members => allowed(job, roster, history),
        CohortPolicy::Fixed => allowed(job, roster, history),
        CohortPolicy::Shrink | CohortPolicy::Open => None,
    }
}

/// Checks that `contributors` may be the contributor set of round
/// `history.len()` of `job`.
pub fn check(
    job: &JobSpec,
    history: &[BTreeSet<PartyIndex>],
    contributors: &BTreeSet<PartyIndex>,
    roster: &Roster,
) -> Result<(), RefereeError> {
    let Some(allowed_set) = allowed(job, roster, history) else {
        return Ok(());
    };
    // The set is exact under `require_all_members` and the fixed policy.
    let ok = if job.require_all_members || job.cohort == CohortPolicy::Fixed {
        *contributors == allowed_set
    } else {
        contributors.is_subset(&allowed_set)
    };
    if ok {
        return Ok(());
    }
    let why = if job.require_all_members {
        format!(
            "the job requires every member in every round: {}",
            names(roster, &allowed_set)
        )
    } else if job.cohort == CohortPolicy::Fixed {
        format!(
            "every round must have exactly the first round's contributors {}",
            names(roster, &allowed_set)
        )
    } else {
        format!(
            "contributors may only shrink, and the previous round had {}",
            names(roster, &allowed_set)
        )
    };
    Err(RefereeError::Cohort {
        round: history.len() as u64,
        policy: if job.require_all_members {
            "require_all_members"
        } else {
            job.cohort.name()
        },
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

    fn job(cohort: CohortPolicy, require_all_members: bool) -> JobSpec {
        JobSpec {
            id: "j".into(),
            cohort,
            require_all_members,
            kind: crate::consortium::JobKind::SecureSum {
                dimension: 1,
                frac_bits: 16,
                clip: 1.0,
                rounds: 1,
            },
        }
    }

    fn roster(n: u32) -> Roster {
        use fedcredit_crypto::identity::IdentityKey;
        let key = |i: u8| IdentityKey::from_secret_bytes(&[i; 32]).public();
        let members = (1..=n)
            .map(|i| {
                (
                    fedcredit_proto::roster::ParticipantId::new(&format!("m{i}")).expect("id"),
                    key(i as u8),
                )
            })
            .collect();
        Roster::new(members, key(0)).expect("roster")
    }

    #[test]
    fn each_policy_allows_what_it_says() {
        let r = roster(4);
        let history = vec![set(&[1, 2, 3, 4]), set(&[1, 2, 3])];
        let allowed = |c, all| allowed(&job(c, all), &r, &history);
        assert_eq!(
            allowed(CohortPolicy::Fixed, false),
            Some(set(&[1, 2, 3, 4]))
        );
        assert_eq!(allowed(CohortPolicy::Shrink, false), Some(set(&[1, 2, 3])));
        assert_eq!(allowed(CohortPolicy::Open, false), None);
        assert_eq!(allowed(CohortPolicy::Open, true), Some(set(&[1, 2, 3, 4])));
        assert_eq!(
            super::allowed(&job(CohortPolicy::Fixed, false), &r, &[]),
            None,
            "the first round sets the cohort"
        );
    }

    #[test]
    fn require_all_members_refuses_any_smaller_set() {
        let r = roster(4);
        let j = job(CohortPolicy::Open, true);
        assert!(check(&j, &[], &set(&[1, 2, 3, 4]), &r).is_ok());
        let e = check(&j, &[], &set(&[1, 2, 3]), &r).expect_err("one missing");
        assert!(e.to_string().contains("every member"), "{e}");
        let shrink = job(CohortPolicy::Shrink, false);
        assert!(check(&shrink, &[set(&[1, 2, 3])], &set(&[1, 2]), &r).is_ok());
        assert!(check(&shrink, &[set(&[1, 2, 3])], &set(&[1, 2, 4]), &r).is_err());
    }
}
