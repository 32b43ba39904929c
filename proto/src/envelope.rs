//! Signed envelopes: a participant's [`Message`] or the coordinator's
//! [`CoordinatorMessage`], encoded, then signed over a domain-separated
//! prefix. Opening an envelope checks the author against the roster and
//! yields a [`SignatureChecked`] proof alongside the decoded message.

use fedcredit_crypto::CryptoError;
use fedcredit_crypto::identity::{
    IdentityKey, IdentityPublic, SignContext, Signature, SignatureChecked, verify_batch,
};
use prost::Message as _;

use crate::WireError;
use crate::roster::{Member, Roster};
use crate::v1::{AdminCommand, AdminRequest, CoordinatorMessage, Message, Signed};

/// Encodes and signs a participant message.
pub fn seal(key: &IdentityKey, message: &Message) -> Signed {
    seal_digested(key, message).0
}

/// [`seal`], also returning the SHA-256 of the payload that was signed (what
/// a participant's journal records of it), so a masked vector is hashed once.
pub fn seal_digested(key: &IdentityKey, message: &Message) -> (Signed, [u8; 32]) {
    let payload = message.encode_to_vec();
    let (signature, digest) = key.sign_digested(SignContext::ParticipantMessage, &payload);
    let signed = Signed {
        payload: payload.into(),
        signature: signature.to_bytes().to_vec().into(),
    };
    (signed, digest)
}

/// Encodes and signs a coordinator message.
pub fn seal_coordinator(key: &IdentityKey, message: &CoordinatorMessage) -> Signed {
    let payload = message.encode_to_vec();
    let signature = key.sign(SignContext::CoordinatorMessage, &payload);
    Signed {
        payload: payload.into(),
        signature: signature.to_bytes().to_vec().into(),
    }
}

/// A participant message whose signature verified under its sender's
/// consortium key.
#[derive(Debug)]
pub struct Opened<'r> {
    /// The decoded message.
    pub message: Message,
    /// Its author, from the roster.
    pub sender: &'r Member,
    /// Proof that the signature was checked.
    pub checked: SignatureChecked,
}

/// Decodes a participant envelope, finds its sender in the roster and
/// verifies the signature. Decoding from the shared `Bytes` buffer means a
/// large masked vector is not copied.
pub fn open<'r>(signed: &Signed, roster: &'r Roster) -> Result<Opened<'r>, WireError> {
    let (message, sender) = decode(signed, roster)?;
    let checked = verify(
        &sender.key,
        SignContext::ParticipantMessage,
        signed,
        &message.sender,
    )?;
    Ok(Opened {
        message,
        sender,
        checked,
    })
}

/// A participant envelope's message and its sender in the roster, not yet
/// checked.
fn decode<'r>(signed: &Signed, roster: &'r Roster) -> Result<(Message, &'r Member), WireError> {
    let message = Message::decode(signed.payload.clone()).map_err(|source| WireError::Decode {
        what: "participant message",
        source,
    })?;
    let sender = roster.member(&message.sender)?;
    Ok((message, sender))
}

/// [`open`] for a list of envelopes relayed together (advertisements,
/// shares, survivor confirmations): the signatures are checked as one
/// batch ([`verify_batch`]), about 2.5× cheaper per signature at a few
/// hundred. Errors as [`open`] would give for the first bad envelope.
pub fn open_all<'r>(signed: &[Signed], roster: &'r Roster) -> Result<Vec<Opened<'r>>, WireError> {
    let mut decoded = Vec::with_capacity(signed.len());
    for s in signed {
        let (message, sender) = decode(s, roster)?;
        let signature =
            Signature::from_bytes(&s.signature).map_err(|_| WireError::BadSignature {
                who: message.sender.clone(),
            })?;
        decoded.push((message, sender, signature));
    }
    let items: Vec<(&IdentityPublic, &[u8], &Signature)> = decoded
        .iter()
        .zip(signed)
        .map(|((_, sender, sig), s)| (&sender.key, &s.payload[..], sig))
        .collect();
    let checked = verify_batch(SignContext::ParticipantMessage, &items).map_err(|e| {
        let who = match e {
            CryptoError::BadSignatureInBatch { index } => decoded[index].0.sender.clone(),
            _ => String::from("a relayed envelope"),
        };
        WireError::BadSignature { who }
    })?;
    Ok(decoded
        .into_iter()
        .zip(checked)
        .map(|((message, sender, _), checked)| Opened {
            message,
            sender,
            checked,
        })
        .collect())
}

/// Decodes a coordinator envelope and verifies it under the coordinator key.
pub fn open_coordinator(
    signed: &Signed,
    coordinator: &IdentityPublic,
) -> Result<(CoordinatorMessage, SignatureChecked), WireError> {
    let checked = verify(
        coordinator,
        SignContext::CoordinatorMessage,
        signed,
        "the coordinator",
    )?;
    let message =
        CoordinatorMessage::decode(signed.payload.clone()).map_err(|source| WireError::Decode {
            what: "coordinator message",
            source,
        })?;
    Ok((message, checked))
}

/// A coordinator envelope opened once: the envelope as received, its
/// decoded message, and the proof that the coordinator signed it (which
/// carries the SHA-256 of the payload). Only [`check_coordinator`] makes
/// one, so whoever holds it (a participant's referee absorbing a published
/// round) may read the message without verifying or hashing it again.
#[derive(Debug, Clone)]
pub struct CheckedCoordinator {
    signed: Signed,
    message: CoordinatorMessage,
    checked: SignatureChecked,
    signer: IdentityPublic,
}

impl CheckedCoordinator {
    /// The key the signature verified under.
    pub fn signer(&self) -> &IdentityPublic {
        &self.signer
    }

    /// The envelope as received.
    pub fn signed(&self) -> &Signed {
        &self.signed
    }

    /// The decoded message.
    pub fn message(&self) -> &CoordinatorMessage {
        &self.message
    }

    /// SHA-256 of the signed payload (for an outcome, its
    /// `fedcredit_crypto::secagg::outcome_digest`).
    pub fn digest(&self) -> [u8; 32] {
        self.checked.digest()
    }
}

/// [`open_coordinator`], keeping the envelope beside the message it opened
/// to: see [`CheckedCoordinator`].
pub fn check_coordinator(
    signed: Signed,
    coordinator: &IdentityPublic,
) -> Result<CheckedCoordinator, WireError> {
    let (message, checked) = open_coordinator(&signed, coordinator)?;
    Ok(CheckedCoordinator {
        signed,
        message,
        checked,
        signer: *coordinator,
    })
}

/// Encodes and signs an operator's job command (`fedcredit job`) with the
/// coordinator key.
pub fn seal_admin(key: &IdentityKey, command: &AdminCommand) -> AdminRequest {
    let payload = command.encode_to_vec();
    let signature = key.sign(SignContext::AdminCommand, &payload);
    AdminRequest {
        command: payload.into(),
        signature: signature.to_bytes().to_vec().into(),
    }
}

/// Verifies an operator's job command under the coordinator key, then
/// decodes it (nothing unsigned is parsed).
pub fn open_admin(
    request: &AdminRequest,
    coordinator: &IdentityPublic,
) -> Result<AdminCommand, WireError> {
    let bad = || WireError::BadSignature {
        who: "the operator".to_owned(),
    };
    let signature = Signature::from_bytes(&request.signature).map_err(|_| bad())?;
    coordinator
        .verify(SignContext::AdminCommand, &request.command, &signature)
        .map_err(|_| bad())?;
    AdminCommand::decode(request.command.clone()).map_err(|source| WireError::Decode {
        what: "job command",
        source,
    })
}

fn verify(
    key: &IdentityPublic,
    context: SignContext,
    signed: &Signed,
    who: &str,
) -> Result<SignatureChecked, WireError> {
    let bad = || WireError::BadSignature {
        who: who.to_owned(),
    };
    let signature = Signature::from_bytes(&signed.signature).map_err(|_| bad())?;
    key.verify(context, &signed.payload, &signature)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::ParticipantId;
    use crate::v1::{Poll, message::Body};

    fn roster() -> (Roster, IdentityKey, IdentityKey) {
        let a = IdentityKey::from_secret_bytes(&[1; 32]);
        let c = IdentityKey::from_secret_bytes(&[9; 32]);
        let members = vec![(ParticipantId::new("bank-a").expect("id"), a.public())];
        (Roster::new(members, c.public()).expect("roster"), a, c)
    }

    fn poll(sender: &str) -> Message {
        Message {
            job_id: "j".into(),
            round: 1,
            attempt: 0,
            sender: sender.into(),
            body: Some(Body::Poll(Poll::now(true))),
        }
    }

    #[test]
    fn opens_what_a_member_sealed() {
        let (roster, a, _) = roster();
        let opened = open(&seal(&a, &poll("bank-a")), &roster).expect("valid");
        assert_eq!(opened.sender.id.as_str(), "bank-a");
    }

    #[test]
    fn rejects_a_key_outside_the_consortium() {
        let (roster, _, _) = roster();
        let outsider = IdentityKey::from_secret_bytes(&[7; 32]);
        let err = open(&seal(&outsider, &poll("bank-a")), &roster).expect_err("outsider");
        assert!(matches!(err, WireError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn rejects_an_unknown_sender() {
        let (roster, a, _) = roster();
        let err = open(&seal(&a, &poll("bank-z")), &roster).expect_err("unknown");
        assert!(matches!(err, WireError::UnknownSender(_)), "{err}");
    }

    #[test]
    fn open_all_opens_a_relayed_list_and_names_a_forged_sender() {
        let a = IdentityKey::from_secret_bytes(&[1; 32]);
        let b = IdentityKey::from_secret_bytes(&[2; 32]);
        let c = IdentityKey::from_secret_bytes(&[9; 32]);
        let members = vec![
            (ParticipantId::new("bank-a").expect("id"), a.public()),
            (ParticipantId::new("bank-b").expect("id"), b.public()),
        ];
        let roster = Roster::new(members, c.public()).expect("roster");
        let list = [seal(&a, &poll("bank-a")), seal(&b, &poll("bank-b"))];
        let opened = open_all(&list, &roster).expect("valid");
        let senders: Vec<&str> = opened.iter().map(|o| o.sender.id.as_str()).collect();
        assert_eq!(senders, ["bank-a", "bank-b"]);
        // bank-a signs a message claiming to be bank-b's: named as bank-b's bad signature.
        let forged = [seal(&a, &poll("bank-a")), seal(&a, &poll("bank-b"))];
        match open_all(&forged, &roster) {
            Err(WireError::BadSignature { who }) => assert_eq!(who, "bank-b"),
            other => panic!("expected a bad signature, got {other:?}"),
        }
        assert!(open_all(&[], &roster).expect("empty").is_empty());
    }

    #[test]
    fn a_participant_signature_is_not_a_coordinator_signature() {
        let (roster, _, c) = roster();
        // Same key, wrong context: signed as a participant message.
        let signed = seal(&c, &poll("bank-a"));
        assert!(open_coordinator(&signed, roster.coordinator()).is_err());
    }
}
