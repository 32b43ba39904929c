//! A consortium member that colludes with the coordinator: the adversary
//! holds its identity key and plays it. It runs the real client state
//! machine (`fedcredit_crypto::secagg::client`) for its own messages, so the
//! honest members accept them, but draws its keys from a seeded RNG so the
//! adversary can also recompute its secrets and decrypt every share dealt to
//! it (both kinds, for every peer): what a colluding member gives away.

use std::collections::BTreeMap;

use fedcredit_crypto::aead;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::{AgreementSecret, KeyPurpose, SessionId, derive_key};
use fedcredit_crypto::mask::MaskSeed;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, DealtToMe, ShareKeys};
use fedcredit_crypto::secagg::{Advertisement, PartyIndex, Thresholds};
use fedcredit_crypto::shamir::{SHARE_LEN, split};
use fedcredit_proto::envelope;
use fedcredit_proto::roster::Roster;
use fedcredit_proto::shares;
use fedcredit_proto::v1::{self as pb, message::Body};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// One share pair as bytes (`Share` is deliberately not `Clone`).
#[derive(Clone, Debug)]
pub struct HeldPair {
    /// Share of the owner's mask-agreement secret key.
    pub key: Vec<u8>,
    /// Share of the owner's self-mask seed.
    pub self_mask: Vec<u8>,
}

/// A member played by the adversary (see the module docs).
pub struct Colluder {
    /// Its member id.
    pub id: String,
    index: PartyIndex,
    key: IdentityKey,
    /// Its plain input (known to the adversary).
    value: f64,
    /// The current attempt's (round, attempt) and seed.
    at: (u64, u32),
    thresholds: Option<Thresholds>,
    advertised: Option<AdvertiseKeys>,
    sharing: Option<ShareKeys>,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    session: Option<SessionId>,
    /// Roster ids by index.
    names: BTreeMap<PartyIndex, String>,
    /// Shares dealt to it (and its own), by (round, attempt) then owner id.
    pub held: BTreeMap<(u64, u32), BTreeMap<String, HeldPair>>,
}

impl std::fmt::Debug for Colluder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Colluder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn seed(index: PartyIndex, at: (u64, u32), purpose: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&index.get().to_be_bytes());
    s[4..12].copy_from_slice(&at.0.to_be_bytes());
    s[12..16].copy_from_slice(&at.1.to_be_bytes());
    s[16] = purpose;
    s
}

impl Colluder {
    /// Member `id` at roster `index`, signing with `key`, contributing
    /// `value` in every coordinate.
    pub fn new(id: &str, index: PartyIndex, key: IdentityKey, value: f64) -> Self {
        Self {
            id: id.to_owned(),
            index,
            key,
            value,
            at: (0, 0),
            thresholds: None,
            advertised: None,
            sharing: None,
            cohort: BTreeMap::new(),
            session: None,
            names: BTreeMap::new(),
            held: BTreeMap::new(),
        }
    }

    /// Its input for a round of `dimension` values.
    pub fn input(&self, dimension: usize) -> Vec<f64> {
        vec![self.value; dimension]
    }

    /// Signs a message of this member.
    pub fn sealed(&self, job: &str, round: u64, attempt: u32, body: Option<Body>) -> pb::Signed {
        envelope::seal(
            &self.key,
            &pb::Message {
                job_id: job.to_owned(),
                round,
                attempt,
                sender: self.id.clone(),
                body,
            },
        )
    }

    /// The secrets its seeded RNG drew for the current attempt, in the
    /// order `AdvertiseKeys::new` draws them.
    fn secrets(&self) -> (AgreementSecret, AgreementSecret, MaskSeed) {
        let mut rng = ChaCha20Rng::from_seed(seed(self.index, self.at, 1));
        let share_enc = AgreementSecret::generate(&mut rng);
        let mask_agree = AgreementSecret::generate(&mut rng);
        let self_seed = MaskSeed::generate(&mut rng);
        (share_enc, mask_agree, self_seed)
    }

    /// Phase 1: fresh (seeded) keys for (round, attempt), signed.
    pub fn advertise(
        &mut self,
        job: &str,
        round: u64,
        attempt: u32,
        thresholds: Thresholds,
    ) -> pb::Signed {
        self.at = (round, attempt);
        self.thresholds = Some(thresholds);
        let mut rng = ChaCha20Rng::from_seed(seed(self.index, self.at, 1));
        let keys = AdvertiseKeys::new(self.index, thresholds, &mut rng);
        let ad = keys.advertisement();
        assert_eq!(
            self.secrets().0.public(),
            ad.share_enc,
            "the colluder's key replay drifted from AdvertiseKeys::new"
        );
        self.advertised = Some(keys);
        self.sealed(
            job,
            round,
            attempt,
            Some(Body::Advertise(pb::KeyAdvertisement {
                share_enc_public: ad.share_enc.to_bytes().to_vec().into(),
                mask_agree_public: ad.mask_agree.to_bytes().to_vec().into(),
            })),
        )
    }

    /// Its advertisement for the current attempt.
    pub fn advertisement(&self) -> Advertisement {
        let (share_enc, mask_agree, _) = self.secrets();
        Advertisement {
            share_enc: share_enc.public(),
            mask_agree: mask_agree.public(),
        }
    }

    /// The session id of its current attempt (after [`Colluder::share_keys`]).
    pub fn session(&self) -> SessionId {
        self.session
            .unwrap_or_else(|| panic!("colluder has no session before sharing"))
    }

    /// Phase 2: deals its shares to `cohort` (real client code, seeded).
    /// Returns its `EncryptedShares` message (ciphertexts and signed
    /// commitments, to be sealed); keeps its own share pair.
    pub fn share_keys(
        &mut self,
        roster: &Roster,
        session: SessionId,
        cohort: BTreeMap<PartyIndex, Advertisement>,
    ) -> pb::EncryptedShares {
        let keys = self
            .advertised
            .take()
            .unwrap_or_else(|| panic!("colluder shares before advertising"));
        let thresholds = self.thresholds.unwrap_or_else(|| panic!("no thresholds"));
        let mut rng = ChaCha20Rng::from_seed(seed(self.index, self.at, 2));
        let (state, out) = keys
            .share_keys(session, cohort.clone(), &mut rng)
            .unwrap_or_else(|e| panic!("colluder share_keys: {e}"));
        // Replay the two `split` calls to learn its own share pair.
        let (_, mask_agree, self_seed) = self.secrets();
        let xs: Vec<u32> = cohort.keys().map(|p| p.get()).collect();
        let mut rng = ChaCha20Rng::from_seed(seed(self.index, self.at, 2));
        let key_shares = split(
            &mask_agree.to_bytes(),
            thresholds.threshold(),
            &xs,
            &mut rng,
        )
        .unwrap_or_else(|e| panic!("split: {e}"));
        let seed_shares = split(self_seed.as_bytes(), thresholds.threshold(), &xs, &mut rng)
            .unwrap_or_else(|e| panic!("split: {e}"));
        assert_eq!(
            out.dealt.self_mask,
            fedcredit_crypto::secagg::self_mask_commitment(&session, self.index, &self_seed),
            "the colluder's seed replay drifted"
        );
        let own = key_shares
            .iter()
            .zip(&seed_shares)
            .find(|(k, _)| k.x() == self.index.get())
            .map(|(k, s)| HeldPair {
                key: k.to_bytes().to_vec(),
                self_mask: s.to_bytes().to_vec(),
            })
            .unwrap_or_else(|| panic!("no own share"));
        self.held
            .entry(self.at)
            .or_default()
            .insert(self.id.clone(), own);
        self.sharing = Some(state);
        self.names = roster
            .members()
            .map(|m| (m.index, m.id.to_string()))
            .collect();
        self.cohort = cohort;
        self.session = Some(session);
        shares::to_pb(roster, out.ciphertexts, &out.dealt)
    }

    /// Phase 3: decrypts (and keeps) every share dealt to it, then masks
    /// `encoded` with the real client code.
    pub fn masked_input(
        &mut self,
        ring: fedcredit_crypto::ring::Ring,
        encoded: &[u64],
        from_peers: Vec<DealtToMe>,
    ) -> Vec<u64> {
        let session = self.session.unwrap_or_else(|| panic!("no session"));
        let (share_enc, _, _) = self.secrets();
        for DealtToMe {
            from,
            ciphertext: ct,
            ..
        } in &from_peers
        {
            let ad = self.cohort[from];
            let shared = share_enc
                .agree(&ad.share_enc)
                .unwrap_or_else(|e| panic!("agree: {e}"));
            let key = derive_key(
                &shared,
                KeyPurpose::ShareEncryption,
                &session,
                from.get(),
                self.index.get(),
            );
            // The associated data `secagg::share_ad` builds (private there).
            let mut assoc = b"fedcredit/v1/share\0".to_vec();
            assoc.extend_from_slice(session.as_bytes());
            assoc.extend_from_slice(&from.get().to_be_bytes());
            assoc.extend_from_slice(&self.index.get().to_be_bytes());
            let plain =
                aead::open(&key, &assoc, ct).unwrap_or_else(|e| panic!("colluder decrypt: {e}"));
            let owner = self.owner_id(*from);
            self.held.entry(self.at).or_default().insert(
                owner,
                HeldPair {
                    key: plain[8..8 + SHARE_LEN].to_vec(),
                    self_mask: plain[8 + SHARE_LEN..].to_vec(),
                },
            );
        }
        let state = self
            .sharing
            .take()
            .unwrap_or_else(|| panic!("colluder masks before sharing"));
        let (_, masked) = state
            .masked_input(ring, encoded, from_peers)
            .unwrap_or_else(|e| panic!("colluder masked_input: {e}"));
        masked
    }

    /// The roster id of `p`.
    fn owner_id(&self, p: PartyIndex) -> String {
        self.names.get(&p).cloned().unwrap_or_else(|| p.to_string())
    }

    /// Phase 5: the reveal for survivor list `survivors` over `u2`: self-mask
    /// shares of the survivors, key shares of the rest (as an honest member
    /// would reveal for that list).
    pub fn reveal(&self, u2: &[String], survivors: &[String]) -> pb::UnmaskShares {
        let held = self.held.get(&self.at).cloned().unwrap_or_default();
        let mut out = pb::UnmaskShares::default();
        for owner in u2 {
            let Some(pair) = held.get(owner) else {
                continue;
            };
            if survivors.contains(owner) {
                out.self_mask_shares.push(pb::RevealedShare {
                    owner: owner.clone(),
                    share: pair.self_mask.clone().into(),
                });
            } else {
                out.key_shares.push(pb::RevealedShare {
                    owner: owner.clone(),
                    share: pair.key.clone().into(),
                });
            }
        }
        out
    }
}
