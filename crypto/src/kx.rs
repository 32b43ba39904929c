//! X25519 key agreement and HKDF-SHA256 key derivation.
//!
//! Each participant publishes two [`AgreementPublic`] keys per round (one for
//! encrypting Shamir shares, one for pairwise masks). Two parties compute the
//! same [`SharedSecret`] with [`AgreementSecret::agree`], then
//! [`derive_key`] turns it into a 32-byte key bound to a purpose, a session
//! and an ordered pair of party indices:
//!
//! ```text
//! key  = HKDF-SHA256(salt = none, ikm = shared secret, info, L = 32)
//! info = "fedcredit/v1/" || label || 0x00 || session id (32 bytes)
//!        || a (u32, big-endian) || b (u32, big-endian)
//! label = "share-encryption" | "pairwise-mask"
//! ```
//!
//! ```
//! use fedcredit_crypto::kx::{derive_key, AgreementSecret, KeyPurpose, SessionId};
//!
//! let mut rng = rand::rngs::OsRng;
//! let (alice, bob) = (AgreementSecret::generate(&mut rng), AgreementSecret::generate(&mut rng));
//! let session = SessionId([7; 32]);
//! let k_ab = derive_key(&alice.agree(&bob.public())?, KeyPurpose::PairwiseMask, &session, 1, 2);
//! let k_ba = derive_key(&bob.agree(&alice.public())?, KeyPurpose::PairwiseMask, &session, 1, 2);
//! assert_eq!(*k_ab, *k_ba);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use std::fmt;

use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of an X25519 public key.
const PUBLIC_LEN: usize = 32;

/// An X25519 secret key. Not `Clone`; zeroized on drop (the wrapped
/// `StaticSecret` zeroizes itself); `Debug` prints `AgreementSecret(..)`.
pub struct AgreementSecret(StaticSecret);

impl AgreementSecret {
    /// Draws a fresh key from `rng`.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self(StaticSecret::random_from_rng(rng))
    }

    /// Rebuilds a key from its 32 bytes (e.g. after Shamir reconstruction).
    /// The bytes are clamped by X25519 when used, as RFC 7748 says.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(StaticSecret::from(*bytes))
    }

    /// The 32 secret bytes, as given to or drawn by the constructor.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public(&self) -> AgreementPublic {
        AgreementPublic(PublicKey::from(&self.0).to_bytes())
    }

    /// X25519 with `peer`.
    ///
    /// Errors: [`CryptoError::WeakKeyAgreement`] if the result is all zero,
    /// i.e. `peer` is a low-order point and the result would not depend on
    /// our secret.
    pub fn agree(&self, peer: &AgreementPublic) -> Result<SharedSecret, CryptoError> {
        let shared = self.0.diffie_hellman(&PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(CryptoError::WeakKeyAgreement);
        }
        Ok(SharedSecret(Zeroizing::new(shared.to_bytes())))
    }
}

impl fmt::Debug for AgreementSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgreementSecret(..)")
    }
}

/// An X25519 public key (32-byte Montgomery u-coordinate, RFC 7748).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AgreementPublic([u8; 32]);

impl AgreementPublic {
    /// Takes 32 bytes; anything else is [`CryptoError::InvalidLength`].
    /// Low-order points are caught later by [`AgreementSecret::agree`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; PUBLIC_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidLength {
            what: "agreement public key",
            expected: PUBLIC_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(bytes))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

/// The raw X25519 output. Only useful as input to [`derive_key`]. Not
/// `Clone`; zeroized on drop; `Debug` prints `SharedSecret(..)`.
pub struct SharedSecret(Zeroizing<[u8; 32]>);

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// Identifies one aggregation session (job and round); bound into every
/// derived key so keys never repeat across rounds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId(pub [u8; 32]);

impl SessionId {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bytes as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why a key is derived (goes into the HKDF info).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyPurpose {
    /// Key for [`crate::aead`] encryption of Shamir shares; `(a, b)` =
    /// `(sender, recipient)`.
    ShareEncryption,
    /// Seed for a pairwise mask ([`crate::mask::MaskSeed`]); `(a, b)` =
    /// `(low index, high index)`.
    PairwiseMask,
}

impl KeyPurpose {
    /// The label written into the HKDF info.
    fn label(self) -> &'static [u8] {
        match self {
            KeyPurpose::ShareEncryption => b"share-encryption",
            KeyPurpose::PairwiseMask => b"pairwise-mask",
        }
    }
}

/// Common prefix of every HKDF info string.
const INFO_PREFIX: &[u8] = b"fedcredit/v1/";

/// HKDF-SHA256 with salt = none (RFC 5869: a zero-filled salt), ikm = the
/// shared secret, L = 32 and
/// `info = b"fedcredit/v1/" || label || 0x00 || session || a.to_be_bytes() || b.to_be_bytes()`,
/// where the label is `b"share-encryption"` or `b"pairwise-mask"` and
/// `(a, b)` are party indices ordered as the caller needs: `(sender,
/// recipient)` for share encryption, `(low, high)` for masks.
///
/// ```
/// use fedcredit_crypto::kx::{derive_key, AgreementSecret, KeyPurpose, SessionId};
///
/// let a = AgreementSecret::from_bytes(&[1; 32]);
/// let b = AgreementSecret::from_bytes(&[2; 32]);
/// let shared = a.agree(&b.public())?;
/// let s = SessionId([0; 32]);
/// // Direction and purpose both change the key.
/// let k12 = derive_key(&shared, KeyPurpose::ShareEncryption, &s, 1, 2);
/// let k21 = derive_key(&shared, KeyPurpose::ShareEncryption, &s, 2, 1);
/// let m12 = derive_key(&shared, KeyPurpose::PairwiseMask, &s, 1, 2);
/// assert_ne!(*k12, *k21);
/// assert_ne!(*k12, *m12);
/// # Ok::<(), fedcredit_crypto::CryptoError>(())
/// ```
pub fn derive_key(
    shared: &SharedSecret,
    purpose: KeyPurpose,
    session: &SessionId,
    a: u32,
    b: u32,
) -> Zeroizing<[u8; 32]> {
    let label = purpose.label();
    let mut info = Vec::with_capacity(INFO_PREFIX.len() + label.len() + 1 + 32 + 8);
    info.extend_from_slice(INFO_PREFIX);
    info.extend_from_slice(label);
    info.push(0);
    info.extend_from_slice(session.as_bytes());
    info.extend_from_slice(&a.to_be_bytes());
    info.extend_from_slice(&b.to_be_bytes());

    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared.0.as_slice())
        .expand(&info, okm.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let v = hex::decode(s).expect("test hex");
        v.try_into().expect("test hex length")
    }

    const ALICE_SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB_SK: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const BOB_PK: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

    /// RFC 7748 §6.1.
    #[test]
    fn rfc7748_x25519_vector() {
        let alice = AgreementSecret::from_bytes(&unhex(ALICE_SK));
        let bob = AgreementSecret::from_bytes(&unhex(BOB_SK));
        assert_eq!(alice.public().to_bytes(), unhex::<32>(ALICE_PK));
        assert_eq!(bob.public().to_bytes(), unhex::<32>(BOB_PK));
        let ab = alice.agree(&bob.public()).expect("contributory");
        let ba = bob.agree(&alice.public()).expect("contributory");
        assert_eq!(*ab.0, unhex::<32>(SHARED));
        assert_eq!(*ba.0, unhex::<32>(SHARED));
        assert_eq!(*alice.to_bytes(), unhex::<32>(ALICE_SK));
    }

    /// HKDF outputs computed independently (Python `cryptography`'s HKDF)
    /// from the RFC 7748 shared secret, session = 00 01 .. 1f.
    #[test]
    fn derive_key_known_answers() {
        let alice = AgreementSecret::from_bytes(&unhex(ALICE_SK));
        let bob = AgreementSecret::from_bytes(&unhex(BOB_SK));
        let shared = alice.agree(&bob.public()).expect("contributory");
        let mut session = [0u8; 32];
        for (i, b) in session.iter_mut().enumerate() {
            *b = i as u8;
        }
        let session = SessionId(session);
        assert_eq!(
            hex::encode(*derive_key(
                &shared,
                KeyPurpose::PairwiseMask,
                &session,
                3,
                7
            )),
            "01d94fec74b3d11c28db868630d29ed1e24d4c16b1153a9f0bd85e9e416518d7"
        );
        assert_eq!(
            hex::encode(*derive_key(
                &shared,
                KeyPurpose::ShareEncryption,
                &session,
                7,
                3
            )),
            "81f8efc3451be37249550f5ff635f261049752c7c2b639a1f39d76434ec1db3e"
        );
    }

    #[test]
    fn derive_key_matches_documented_info_layout() {
        let shared = SharedSecret(Zeroizing::new([9; 32]));
        let session = SessionId([0xab; 32]);
        let mut info = b"fedcredit/v1/pairwise-mask\0".to_vec();
        info.extend_from_slice(&[0xab; 32]);
        info.extend_from_slice(&[0, 0, 1, 2, 0xde, 0xad, 0xbe, 0xef]);
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(None, &[9; 32])
            .expand(&info, &mut expected)
            .expect("valid length");
        let got = derive_key(
            &shared,
            KeyPurpose::PairwiseMask,
            &session,
            0x0102,
            0xdead_beef,
        );
        assert_eq!(*got, expected);
    }

    #[test]
    fn session_and_indices_change_the_key() {
        let shared = SharedSecret(Zeroizing::new([5; 32]));
        let base = derive_key(&shared, KeyPurpose::PairwiseMask, &SessionId([0; 32]), 1, 2);
        let other_session =
            derive_key(&shared, KeyPurpose::PairwiseMask, &SessionId([1; 32]), 1, 2);
        let swapped = derive_key(&shared, KeyPurpose::PairwiseMask, &SessionId([0; 32]), 2, 1);
        assert_ne!(*base, *other_session);
        assert_ne!(*base, *swapped);
    }

    #[test]
    fn low_order_peer_is_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let me = AgreementSecret::generate(&mut rng);
        // u = 0 and u = 1 are low-order points on Curve25519.
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let peer = AgreementPublic::from_bytes(&u).expect("32 bytes");
            assert_eq!(me.agree(&peer).err(), Some(CryptoError::WeakKeyAgreement));
        }
    }

    #[test]
    fn public_length_checked_and_debug_redacted() {
        assert_eq!(
            AgreementPublic::from_bytes(&[0; 33]),
            Err(CryptoError::InvalidLength {
                what: "agreement public key",
                expected: 32,
                got: 33
            })
        );
        let secret = AgreementSecret::from_bytes(&[0x42; 32]);
        assert_eq!(format!("{secret:?}"), "AgreementSecret(..)");
        let shared = SharedSecret(Zeroizing::new([0x42; 32]));
        assert_eq!(format!("{shared:?}"), "SharedSecret(..)");
        assert_eq!(SessionId([0xff; 32]).to_hex(), "ff".repeat(32));
    }
}
