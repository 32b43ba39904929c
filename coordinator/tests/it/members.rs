//! What the hand-made members of these tests share: their ids and keys,
//! their signed messages, and phase 1 (advertise fresh keys, check every
//! relayed advertisement, derive the attempt's session id).

use std::collections::BTreeMap;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::{self, Advertisement, PartyIndex, SessionBinding};
use fedcredit_proto::envelope;
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, message::Body};
use fedcredit_referee::consortium::Consortium;
use tonic::transport::Channel;

/// The members of every consortium these tests write.
pub const IDS: [&str; 4] = ["bank-a", "bank-b", "bank-c", "bank-d"];

/// Member `i`'s identity key.
pub fn member_key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i as u8 + 1; 32])
}

/// Member `i`'s message for (round, attempt) of job `job-1`, unsigned.
pub fn message(i: usize, round: u64, attempt: u32, body: Body) -> pb::Message {
    pb::Message {
        job_id: "job-1".into(),
        round,
        attempt,
        sender: IDS[i].into(),
        body: Some(body),
    }
}

/// Member `i`'s message, signed.
pub fn seal(i: usize, round: u64, attempt: u32, body: Body) -> pb::Signed {
    envelope::seal(&member_key(i), &message(i, round, attempt, body))
}

/// Phase 1 for member `i`: advertises `ad` for the attempt `announced`
/// opened, checks every relayed advertisement's signature, and returns the
/// cohort with the attempt's session id.
pub async fn advertise(
    client: &mut CoordinatorClient<Channel>,
    c: &Consortium,
    i: usize,
    announced: &pb::Signed,
    (round, attempt): (u64, u32),
    ad: Advertisement,
) -> Result<(BTreeMap<PartyIndex, Advertisement>, SessionId), tonic::Status> {
    let adverts = client
        .advertise_keys(seal(
            i,
            round,
            attempt,
            Body::Advertise(pb::KeyAdvertisement {
                share_enc_public: ad.share_enc.to_bytes().to_vec().into(),
                mask_agree_public: ad.mask_agree.to_bytes().to_vec().into(),
            }),
        ))
        .await?
        .into_inner();
    let mut cohort = BTreeMap::new();
    for s in &adverts.adverts {
        let o = envelope::open(s, &c.roster).expect("a relayed advertisement verifies");
        let Some(Body::Advertise(k)) = &o.message.body else {
            panic!("not an advertisement")
        };
        cohort.insert(
            o.sender.index,
            Advertisement::try_from(k).expect("well-formed keys"),
        );
    }
    let spec_hash = c.job.hash();
    let announcement = secagg::announcement_digest(&announced.payload);
    let session = secagg::session_id(
        &SessionBinding {
            job_id: &c.job.id,
            job_spec_hash: &spec_hash,
            announcement: &announcement,
            round,
            attempt,
            thresholds: c.protocol.thresholds,
        },
        &cohort,
    );
    Ok((cohort, session))
}
