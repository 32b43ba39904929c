//! The adversary's phases for an epoch job (`[protocol] setup = "epoch"`):
//! the setup's epoch shares, a slot's masked inputs and its reveals. The
//! announcement says which attempt sets up an epoch and which uses a slot
//! ([`Adversary::slot_announcement`]); advertising is the per-round
//! [`Adversary::advertise`].

use std::collections::BTreeMap;

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::epoch::{EpochView, Slot, SlotUnmasker};
use fedcredit_proto::epoch::{EpochDealtShares, reveal_from_pb};
use fedcredit_proto::v1::{self as pb, message::Body};
use fedcredit_proto::words;
use tonic::Status;

use super::{Adversary, Answer, End, Rpc};

impl Adversary {
    /// `announcement` made to use `slot` of the epoch `epoch` (a slot
    /// round: masked input and reveal only).
    pub fn slot_announcement(
        mut announcement: pb::RoundAnnouncement,
        epoch: &SessionId,
        slot: Slot,
    ) -> pb::RoundAnnouncement {
        announcement.epoch = epoch.as_bytes().to_vec().into();
        announcement.slot = slot;
        announcement
    }

    /// Setup phase 2: collects each advertiser's `EpochShares`, relays to
    /// each every other dealer's signed message, and keeps the epoch's view
    /// (as the coordinator builds it) for unmasking its slots. Returns the
    /// epoch's session id.
    pub async fn epoch_share_keys(&mut self) -> SessionId {
        let cohort: Vec<String> = self.current().adverts.keys().cloned().collect();
        let calls = self.collect(Rpc::ShareKeys, &cohort).await;
        let keys = self.cohort_keys();
        let session = self.binding_session(&keys);
        let slots = self
            .consortium
            .protocol
            .epoch_slots
            .unwrap_or_else(|| panic!("the consortium does not run epochs"));
        let roster = self.consortium.roster.clone();
        let mut records = BTreeMap::new();
        let mut signed = BTreeMap::new();
        for (id, call) in &calls {
            let Some(Body::EpochShares(m)) = &call.message.body else {
                continue;
            };
            let dealer = self.index(id);
            let d = EpochDealtShares::from_pb(&roster, dealer, slots, m)
                .unwrap_or_else(|e| panic!("{id} sent malformed epoch shares: {e}"));
            records.insert(dealer, d.record);
            signed.insert(id.clone(), call.signed.clone());
        }
        for (id, call) in calls {
            let dealt = signed
                .iter()
                .filter(|(from, _)| **from != id)
                .map(|(_, s)| s.clone())
                .collect();
            let _ = call
                .reply
                .send(Ok(Answer::Shares(pb::SharesForYou { dealt })));
        }
        self.current().epoch_dealt = signed;
        self.epoch_view =
            EpochView::new(session, self.consortium.protocol.thresholds, slots, records).ok();
        session
    }

    /// A slot's masked inputs: collects them from `cohort`, then answers
    /// each sender with the list `survivors(viewer, senders)` chooses.
    pub async fn slot_masked_input(
        &mut self,
        cohort: &[String],
        survivors: impl Fn(&str, &[String]) -> Vec<String>,
    ) -> Vec<String> {
        let calls = self.collect(Rpc::SubmitMaskedInput, cohort).await;
        let mut masked = BTreeMap::new();
        for (id, call) in &calls {
            let Some(Body::MaskedInput(m)) = &call.message.body else {
                continue;
            };
            let w = words::from_bytes("masked input", &m.values)
                .unwrap_or_else(|e| panic!("{id} sent a bad masked input: {e}"));
            masked.insert(id.clone(), w);
        }
        let senders: Vec<String> = masked.keys().cloned().collect();
        for (id, call) in calls {
            let list = survivors(&id, &senders);
            self.current().shown.insert(id.clone(), list.clone());
            let _ = call
                .reply
                .send(Ok(Answer::Survivors(pb::Survivors { survivors: list })));
        }
        self.current().masked = masked;
        senders
    }

    /// A slot's reveals: collects them from every member shown a list, then
    /// ends as `end` says. With [`End::Complete`], unmasks `slot` with the
    /// real `SlotUnmasker` over the epoch's view and answers each revealer
    /// with the outcome over the masked-input senders; returns the sum.
    pub async fn slot_unmask(&mut self, slot: Slot, end: End) -> Result<Vec<u64>, String> {
        let revealers: Vec<String> = self.current().shown.keys().cloned().collect();
        let calls = self.collect(Rpc::Unmask, &revealers).await;
        let roster = self.consortium.roster.clone();
        let mut reveals = BTreeMap::new();
        for (id, call) in &calls {
            if let Some(Body::SlotReveal(r)) = &call.message.body {
                reveals.insert(id.clone(), r.clone());
            }
        }
        self.current().slot_reveals = reveals.clone();
        let contributors: Vec<String> = self.current().masked.keys().cloned().collect();
        let result = match (&self.epoch_view, end) {
            (_, End::Abort) => Err("aborted by the script".to_string()),
            (None, End::Complete) => Err("no epoch was set up".to_string()),
            (Some(view), End::Complete) => (|| {
                let ring = self.current_codec_ring();
                let mut sum = vec![0u64; self.current_words()];
                for words in self
                    .attempts
                    .last()
                    .map(|a| a.masked.values())
                    .into_iter()
                    .flatten()
                {
                    ring.add_assign(&mut sum, words)
                        .map_err(|e| e.to_string())?;
                }
                let mut unmasker = SlotUnmasker::new(view, slot).map_err(|e| e.to_string())?;
                for (id, r) in &reveals {
                    let (at, shares) = reveal_from_pb(&roster, r).map_err(|e| e.to_string())?;
                    if at != slot {
                        return Err(format!("{id} revealed slot {at}, not {slot}"));
                    }
                    unmasker
                        .accept(self.index(id), shares)
                        .map_err(|e| e.to_string())?;
                }
                unmasker.finish(ring, &mut sum).map_err(|e| e.to_string())?;
                Ok(sum)
            })(),
        };
        for (_, call) in calls {
            let answer = match &result {
                Ok(sum) => {
                    let signed = self.outcome(sum, &contributors);
                    let round = self.current().round;
                    if self.published.len() as u64 == round {
                        self.published.push(signed.clone());
                    }
                    Ok(Answer::Signed(signed))
                }
                Err(e) => Err(Status::aborted(format!("the slot is not unmasked: {e}"))),
            };
            let _ = call.reply.send(answer);
        }
        result
    }

    fn current_codec_ring(&self) -> fedcredit_crypto::ring::Ring {
        self.attempts
            .last()
            .map(|a| a.codec().ring())
            .unwrap_or_else(|| panic!("no attempt announced"))
    }

    fn current_words(&self) -> usize {
        self.attempts
            .last()
            .map(|a| a.codec().words_for(a.announcement.dimension as usize))
            .unwrap_or_else(|| panic!("no attempt announced"))
    }
}
