//! Epochs across attempts (`[protocol] setup = "epoch"`): the verifier
//! holds the epoch the last setup attempt set up, with the slots announced
//! in it so far, and checks every announcement's `epoch` and `slot`
//! against it. A coordinator start, a new setup, or a slot abandoned for a
//! missing masked input drops it, as the coordinator drops its own.

use std::collections::BTreeMap;

use fedcredit_crypto::secagg::epoch::Slot;
use fedcredit_proto::v1 as pb;

use super::Verifier;
use super::attempt::{Epoch, EpochAttempt};
use crate::report::{Check, Failure};

/// The epoch the verifier holds.
#[derive(Debug)]
pub(super) struct HeldEpoch {
    pub epoch: Epoch,
    /// Slot → the announcement record that used it (a slot is announced
    /// once, even if its attempt aborts).
    pub announced: BTreeMap<Slot, u64>,
}

impl Verifier<'_> {
    /// The epoch part of an announcement that passed the other checks:
    /// `None` for a job of the per-round protocol, else what the attempt
    /// uses. A setup (empty `epoch`) drops the held epoch and uses slot 0;
    /// a slot attempt names the held epoch and a slot of it never
    /// announced before.
    pub(super) fn epoch_announcement(
        &mut self,
        seq: u64,
        a: &pb::RoundAnnouncement,
    ) -> Result<Option<EpochAttempt>, Failure> {
        let fail = |why: String| Failure::new(seq, Check::Epoch, why);
        let Some(slots) = self.ctx.consortium.protocol.epoch_slots else {
            if !a.epoch.is_empty() || a.slot != 0 {
                return Err(fail(format!(
                    "announces slot {} of epoch {:?}, but the consortium file sets up keys every \
                     attempt (no epochs)",
                    a.slot,
                    hex::encode(&a.epoch)
                )));
            }
            return Ok(None);
        };
        if a.epoch.is_empty() {
            if a.slot != 0 {
                return Err(fail(format!(
                    "sets up a new epoch (no epoch named) but announces slot {}: a setup uses slot 0",
                    a.slot
                )));
            }
            if let Some(held) = self.epoch.take() {
                self.epoch_gone = Some(format!(
                    "{} was replaced by the setup at record {seq}",
                    held.epoch.name()
                ));
            }
            return Ok(Some(EpochAttempt::setup(slots, seq)));
        }
        let named = hex::encode(&a.epoch);
        let Some(held) = &mut self.epoch else {
            let why = self
                .epoch_gone
                .clone()
                .unwrap_or_else(|| "no epoch was set up in this log".into());
            return Err(fail(format!(
                "announces slot {} of epoch {named}, but no epoch is held: {why}",
                a.slot
            )));
        };
        if a.epoch.as_ref() != held.epoch.id.as_bytes() {
            return Err(fail(format!(
                "announces slot {} of epoch {named}, but the epoch held is {}",
                a.slot,
                held.epoch.name()
            )));
        }
        if a.slot >= slots.get() {
            return Err(fail(format!(
                "announces slot {} of {}, which has {} slots",
                a.slot,
                held.epoch.name(),
                slots.get()
            )));
        }
        if let Some(first) = held.announced.get(&a.slot) {
            return Err(fail(format!(
                "announces slot {} of {}, which record {first} already announced: a slot is \
                 used once (two inputs masked in one slot would publish their difference)",
                a.slot,
                held.epoch.name()
            )));
        }
        held.announced.insert(a.slot, seq);
        Ok(Some(EpochAttempt::slot(slots, held.epoch.clone(), a.slot)))
    }

    /// Holds the epoch a setup attempt just set up; its slot 0 is used.
    pub(super) fn hold_epoch(&mut self, epoch: Epoch) {
        let announced = BTreeMap::from([(0, epoch.setup)]);
        self.epoch = Some(HeldEpoch { epoch, announced });
        self.epoch_gone = None;
    }

    /// Drops the held epoch, saying why (for a later announcement that names it).
    pub(super) fn drop_epoch(&mut self, why: impl FnOnce(&Epoch) -> String) {
        if let Some(held) = self.epoch.take() {
            self.epoch_gone = Some(why(&held.epoch));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fedcredit_crypto::identity::IdentityKey;
    use fedcredit_referee::consortium::Consortium;

    use super::*;

    /// Three members, threshold 3; `setup` is the `[protocol]` setup lines.
    fn consortium(setup: &str) -> Consortium {
        let coordinator = IdentityKey::from_secret_bytes(&[9; 32]).public();
        let mut toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n\
             [protocol]\nmax_colluders = 0\nthreshold = 3\nmin_cohort = 3\n{setup}\
             [job]\nid = \"unit\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n",
            coordinator.to_hex()
        );
        for i in 1..=3u8 {
            let key = IdentityKey::from_secret_bytes(&[i; 32]).public();
            toml.push_str(&format!(
                "[[participants]]\nid = \"m{i}\"\npublic_key = \"{}\"\n",
                key.to_hex()
            ));
        }
        Consortium::parse(Path::new("unit.toml"), &toml).expect("consortium")
    }

    fn announcing(epoch: &[u8], slot: u32) -> pb::RoundAnnouncement {
        pb::RoundAnnouncement {
            epoch: epoch.to_vec().into(),
            slot,
            ..pb::RoundAnnouncement::default()
        }
    }

    #[test]
    fn a_per_round_job_names_no_epoch_or_slot() {
        let c = consortium("");
        let mut v = Verifier::new(&c);
        assert!(matches!(
            v.epoch_announcement(3, &announcing(&[], 0)),
            Ok(None)
        ));
        for a in [announcing(&[1; 32], 0), announcing(&[], 1)] {
            let f = v.epoch_announcement(3, &a).expect_err("refused");
            assert_eq!((f.record, f.check), (3, Check::Epoch));
            assert!(f.reason.contains("sets up keys every attempt"), "{f}");
        }
    }

    #[test]
    fn a_setup_uses_slot_0_and_a_slot_needs_a_held_epoch() {
        let c = consortium("setup = \"epoch\"\nslots = 4\n");
        let mut v = Verifier::new(&c);
        let setup = v
            .epoch_announcement(2, &announcing(&[], 0))
            .expect("a setup")
            .expect("an epoch attempt");
        assert_eq!((setup.setup, setup.slot), (Some(2), 0));

        let f = v
            .epoch_announcement(2, &announcing(&[], 3))
            .expect_err("refused");
        assert_eq!(f.check, Check::Epoch);
        assert!(f.reason.contains("a setup uses slot 0"), "{f}");

        let f = v
            .epoch_announcement(5, &announcing(&[4; 32], 1))
            .expect_err("refused");
        assert_eq!((f.record, f.check), (5, Check::Epoch));
        assert!(f.reason.contains("no epoch was set up in this log"), "{f}");

        v.epoch_gone = Some("it was dropped for a test".into());
        let f = v
            .epoch_announcement(6, &announcing(&[4; 32], 1))
            .expect_err("refused");
        assert!(
            f.reason
                .contains("no epoch is held: it was dropped for a test"),
            "{f}"
        );
    }
}
