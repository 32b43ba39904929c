//! Ed25519 identity keys: who sent a message.
//!
//! Every participant and the coordinator hold an [`IdentityKey`]. Signatures
//! are plain Ed25519 (RFC 8032) over `context.prefix() || SHA-256(message)`,
//! where the [`SignContext`] prefix is a fixed, NUL-terminated ASCII label,
//! so that a signature made for one purpose can never be replayed as
//! another. Hashing first with SHA-256 keeps signing and verifying of large
//! masked vectors to one hash pass with no copy of the message (Ed25519
//! would hash the whole message twice with SHA-512).
//! Verification is strict (`ed25519-dalek`'s `verify_strict`: no small-order
//! keys or `R`, no non-canonical `s`), and its only success value is the
//! zero-sized [`SignatureChecked`] proof.
//!
//! ```
//! use fedcredit_crypto::identity::{IdentityKey, SignContext};
//!
//! let key = IdentityKey::generate(&mut rand::rngs::OsRng);
//! let sig = key.sign(SignContext::ParticipantMessage, b"round 7: masked input");
//! let public = key.public();
//! assert!(public.verify(SignContext::ParticipantMessage, b"round 7: masked input", &sig).is_ok());
//! // The same bytes under another context do not verify.
//! assert!(public.verify(SignContext::LogRecord, b"round 7: masked input", &sig).is_err());
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of an encoded Ed25519 public key.
const PUBLIC_LEN: usize = 32;
/// Length of an encoded Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// A long-term Ed25519 signing key. Not `Clone`; zeroized on drop (the
/// wrapped `SigningKey` zeroizes itself). `Debug` prints only the public key.
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// Draws a fresh key from `rng`.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// Rebuilds a key from its 32-byte RFC 8032 secret (seed).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(bytes))
    }

    /// The 32-byte RFC 8032 secret (seed), for storage by the caller.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// A 32-byte secret derived from this key for `context` (HKDF-SHA256,
    /// salt `fedcredit/v1/derived-seed`, info = `context`): the same key and
    /// context always give the same seed, which nobody without the key can
    /// predict. A participant seeds its differential-privacy noise for a
    /// task with it, so a retried task carries the same noise and retries
    /// cannot be averaged to shrink it.
    pub fn derive_seed(&self, context: &[u8]) -> Zeroizing<[u8; 32]> {
        let secret = self.secret_bytes();
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"fedcredit/v1/derived-seed"), &secret[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 255·32-byte limit.
        hk.expand(context, &mut out[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The matching public key.
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic(self.0.verifying_key())
    }

    /// Ed25519 signature over `context.prefix() || SHA-256(message)`.
    pub fn sign(&self, context: SignContext, message: &[u8]) -> Signature {
        self.sign_digested(context, message).0
    }

    /// [`IdentityKey::sign`], also returning the SHA-256 of `message` it
    /// signed: a caller that journals or chains the message by that digest
    /// does not hash a large message a second time.
    pub fn sign_digested(&self, context: SignContext, message: &[u8]) -> (Signature, [u8; 32]) {
        let digest = message_digest(message);
        let signed = context.signed_digest(&digest);
        (Signature(self.0.sign(&signed).to_bytes()), digest)
    }

    /// The key as PKCS#8 DER (RFC 8410), for TLS: in the consortium's pinned
    /// trust mode each party's certificate carries its identity key, and TLS
    /// 1.3 signs its handshake with it. That never collides with a fedcredit
    /// signature: those sign `"fedcredit/v1/…"`, TLS signs 64 spaces and a
    /// TLS context string, and certificates a DER `SEQUENCE` (first bytes
    /// `0x66`, `0x20`, `0x30`), so no signature is valid in two domains.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let doc = self
            .0
            .to_pkcs8_der()
            .unwrap_or_else(|_| unreachable!("an Ed25519 key always has a PKCS#8 encoding"));
        Zeroizing::new(doc.as_bytes().to_vec())
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key, known to be a canonical encoding of a point of
/// large order. Ordered, compared and hashed by its 32-byte encoding;
/// `Display` is lowercase hex, `Debug` is `IdentityPublic(<hex>)`.
#[derive(Clone, Copy)]
pub struct IdentityPublic(VerifyingKey);

impl IdentityPublic {
    /// Decodes a 32-byte public key.
    ///
    /// Errors: [`CryptoError::InvalidLength`] unless 32 bytes;
    /// [`CryptoError::InvalidPublicKey`] if the bytes are not a point, are a
    /// non-canonical encoding of one, or the point has small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: &[u8; PUBLIC_LEN] =
            bytes.try_into().map_err(|_| CryptoError::InvalidLength {
                what: "identity public key",
                expected: PUBLIC_LEN,
                got: bytes.len(),
            })?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
        // Reject small-order points (they can "sign" anything under a lax
        // verifier) and non-canonical encodings (two byte strings, one key).
        if key.is_weak() || key.to_edwards().compress().as_bytes() != bytes {
            return Err(CryptoError::InvalidPublicKey);
        }
        Ok(Self(key))
    }

    /// Decodes 64 hex digits (either case); see [`IdentityPublic::from_bytes`].
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(s).map_err(|_| CryptoError::InvalidHex {
            what: "identity public key",
        })?;
        Self::from_bytes(&bytes)
    }

    /// The 32-byte RFC 8032 encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as an X.509 SubjectPublicKeyInfo (DER, RFC 8410): what a
    /// certificate pinned to this identity must carry.
    pub fn to_spki_der(&self) -> Vec<u8> {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        self.0
            .to_public_key_der()
            .map(|doc| doc.as_bytes().to_vec())
            .unwrap_or_else(|_| unreachable!("an Ed25519 key always has an SPKI encoding"))
    }

    /// The encoding as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Strict verification (`ed25519-dalek` `verify_strict`) of
    /// `context.prefix() || SHA-256(message)`.
    ///
    /// Errors: [`CryptoError::BadSignature`].
    pub fn verify(
        &self,
        context: SignContext,
        message: &[u8],
        signature: &Signature,
    ) -> Result<SignatureChecked, CryptoError> {
        let digest = message_digest(message);
        let signed = context.signed_digest(&digest);
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(&signed, &sig)
            .map_err(|_| CryptoError::BadSignature)?;
        Ok(SignatureChecked { digest })
    }
}

/// Checks many signatures made under one `context` at once (Ed25519 batch
/// verification: one random linear combination, about 2.5× cheaper per
/// signature than [`IdentityPublic::verify`] at a few hundred). For a member
/// that checks the `T` signed confirmations of a survivor list, or every
/// neighbour's relayed message, this is the largest public-key cost.
///
/// Every signature strict verification accepts, the batch accepts. The
/// batch may also accept one that strict verification refuses only if its
/// defect is a small-order component (a small-order `R`, say), which only
/// the key's holder can make: a signer can always sign, so for checks that
/// count distinct signers nothing changes. A coordinator admits each
/// message with [`IdentityPublic::verify`], and the auditor replays with it.
///
/// Errors: [`CryptoError::BadSignatureInBatch`] with the index of the first
/// item that fails strict verification (each is re-checked alone to find it).
pub fn verify_batch(
    context: SignContext,
    items: &[(&IdentityPublic, &[u8], &Signature)],
) -> Result<Vec<SignatureChecked>, CryptoError> {
    let digests: Vec<[u8; 32]> = items
        .iter()
        .map(|(_, message, _)| message_digest(message))
        .collect();
    let signed: Vec<Vec<u8>> = digests.iter().map(|d| context.signed_digest(d)).collect();
    let messages: Vec<&[u8]> = signed.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, _, sig)| ed25519_dalek::Signature::from_bytes(&sig.0))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|(key, _, _)| key.0).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
        // Name the culprit: strict verification, one by one.
        if let Some(index) = items
            .iter()
            .position(|(key, message, sig)| key.verify(context, message, sig).is_err())
        {
            return Err(CryptoError::BadSignatureInBatch { index });
        }
    }
    Ok(digests
        .into_iter()
        .map(|digest| SignatureChecked { digest })
        .collect())
}

impl PartialEq for IdentityPublic {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes() == other.0.as_bytes()
    }
}

impl Eq for IdentityPublic {}

impl Hash for IdentityPublic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl PartialOrd for IdentityPublic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdentityPublic {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl fmt::Display for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({})", self.to_hex())
    }
}

/// What a signature is for. Its [`prefix`](SignContext::prefix) is signed in
/// front of the message (domain separation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignContext {
    /// A protocol message sent by a participant.
    ParticipantMessage,
    /// A protocol message sent by the coordinator.
    CoordinatorMessage,
    /// A record in the append-only audit log.
    LogRecord,
    /// A command of the operator's job API, signed by the coordinator key.
    AdminCommand,
    /// A regulator report (`fedcredit report`): the exact HTML bytes,
    /// signed by the coordinator key in a detached `.sig` file. A context
    /// of its own, so that no report signature can pass for a log record
    /// or a protocol message, nor one of those for a report.
    RegulatorReport,
}

impl SignContext {
    /// The exact bytes signed before the message, NUL-terminated.
    ///
    /// ```
    /// use fedcredit_crypto::identity::SignContext;
    /// assert_eq!(SignContext::LogRecord.prefix(), b"fedcredit/v1/log-record\0");
    /// ```
    pub fn prefix(&self) -> &'static [u8] {
        match self {
            SignContext::ParticipantMessage => b"fedcredit/v1/participant-message\0",
            SignContext::CoordinatorMessage => b"fedcredit/v1/coordinator-message\0",
            SignContext::LogRecord => b"fedcredit/v1/log-record\0",
            SignContext::AdminCommand => b"fedcredit/v1/admin-command\0",
            SignContext::RegulatorReport => b"fedcredit/v1/regulator-report\0",
        }
    }

    /// `prefix() || digest`, `digest` being SHA-256(message): what Ed25519
    /// actually signs.
    fn signed_digest(&self, digest: &[u8; 32]) -> Vec<u8> {
        let prefix = self.prefix();
        let mut out = Vec::with_capacity(prefix.len() + 32);
        out.extend_from_slice(prefix);
        out.extend_from_slice(digest);
        out
    }
}

/// SHA-256 of a message: what a fedcredit signature covers of it.
fn message_digest(message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(message).into()
}

/// An Ed25519 signature: `R || s`, 64 bytes (RFC 8032).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Takes 64 bytes; anything else is [`CryptoError::InvalidLength`].
    /// Whether it verifies is only known from [`IdentityPublic::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; SIGNATURE_LEN] =
            bytes.try_into().map_err(|_| CryptoError::InvalidLength {
                what: "signature",
                expected: SIGNATURE_LEN,
                got: bytes.len(),
            })?;
        Ok(Self(bytes))
    }

    /// The 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

/// Proof that a signature was verified: only [`IdentityPublic::verify`] and
/// [`verify_batch`] can make one, so code that takes a `SignatureChecked`
/// can only run on checked data. It carries the SHA-256 of the message
/// checked, which that check computed: a caller that knows the message by
/// its digest (an outcome listed in an announcement) need not hash it again.
#[derive(Debug, Clone, Copy)]
pub struct SignatureChecked {
    digest: [u8; 32],
}

impl SignatureChecked {
    /// SHA-256 of the message whose signature was checked.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
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

    /// RFC 8032 §7.1, TEST 1.
    const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn rfc8032_test1_public_key() {
        let key = IdentityKey::from_secret_bytes(&unhex(RFC8032_SECRET));
        assert_eq!(key.public().to_hex(), RFC8032_PUBLIC);
        assert_eq!(*key.secret_bytes(), unhex::<32>(RFC8032_SECRET));
    }

    /// RFC 8410 §10.1 (SPKI) and §7 (PKCS#8 v2, OneAsymmetricKey with the
    /// public key, which ring requires) encodings of the RFC 8032 key.
    #[test]
    fn rfc8410_encodings_carry_the_raw_key() {
        let key = IdentityKey::from_secret_bytes(&unhex(RFC8032_SECRET));
        let spki = key.public().to_spki_der();
        assert_eq!(hex::encode(&spki[..12]), "302a300506032b6570032100");
        assert_eq!(spki[12..], unhex::<32>(RFC8032_PUBLIC));
        let pkcs8 = key.to_pkcs8_der();
        assert_eq!(
            hex::encode(&pkcs8[..16]),
            "3051020101300506032b657004220420"
        );
        assert_eq!(pkcs8[16..48], unhex::<32>(RFC8032_SECRET));
        assert_eq!(pkcs8[pkcs8.len() - 32..], unhex::<32>(RFC8032_PUBLIC));
    }

    /// Known answer computed independently (Python `cryptography`'s Ed25519
    /// and `hashlib`) over `b"fedcredit/v1/participant-message\0" || SHA-256(b"hello")`.
    #[test]
    fn context_signature_known_answer() {
        let key = IdentityKey::from_secret_bytes(&unhex(RFC8032_SECRET));
        let sig = key.sign(SignContext::ParticipantMessage, b"hello");
        assert_eq!(
            hex::encode(sig.to_bytes()),
            "b124c6116f9df29e7a05ccc0d2c104eab9c0f1c64866de3b305a5810d42b0b20\
             e5e08e6299bd9241271307dbcc2cb227d2ea1b3da5318539eaa285e96a32de05"
        );
        assert!(
            key.public()
                .verify(SignContext::ParticipantMessage, b"hello", &sig)
                .is_ok()
        );
    }

    #[test]
    fn prefixes_are_distinct_and_nul_terminated() {
        let all = [
            SignContext::ParticipantMessage,
            SignContext::CoordinatorMessage,
            SignContext::LogRecord,
            SignContext::AdminCommand,
            SignContext::RegulatorReport,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.prefix().last(), Some(&0));
            assert_eq!(a.prefix().iter().filter(|&&b| b == 0).count(), 1);
            for b in &all[i + 1..] {
                assert!(!a.prefix().starts_with(b.prefix()));
                assert!(!b.prefix().starts_with(a.prefix()));
            }
        }
    }

    /// A report signature is not a log record's, nor the other way round.
    #[test]
    fn report_signatures_are_their_own() {
        let key = IdentityKey::from_secret_bytes(&[7; 32]);
        let public = key.public();
        let report = key.sign(SignContext::RegulatorReport, b"<html>");
        assert!(
            public
                .verify(SignContext::RegulatorReport, b"<html>", &report)
                .is_ok()
        );
        for other in [
            SignContext::LogRecord,
            SignContext::CoordinatorMessage,
            SignContext::AdminCommand,
        ] {
            assert!(public.verify(other, b"<html>", &report).is_err());
            let sig = key.sign(other, b"<html>");
            assert!(
                public
                    .verify(SignContext::RegulatorReport, b"<html>", &sig)
                    .is_err()
            );
        }
    }

    #[test]
    fn public_key_roundtrips_and_orders_by_bytes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = IdentityKey::generate(&mut rng).public();
        let b = IdentityKey::generate(&mut rng).public();
        assert_eq!(IdentityPublic::from_bytes(&a.to_bytes()), Ok(a));
        assert_eq!(IdentityPublic::from_hex(&a.to_hex()), Ok(a));
        assert_eq!(IdentityPublic::from_hex(&a.to_hex().to_uppercase()), Ok(a));
        assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
        assert_eq!(format!("{a}"), a.to_hex());
        assert_eq!(format!("{a:?}"), format!("IdentityPublic({})", a.to_hex()));
    }

    #[test]
    fn public_key_rejects_bad_encodings() {
        assert_eq!(
            IdentityPublic::from_bytes(&[1u8; 31]),
            Err(CryptoError::InvalidLength {
                what: "identity public key",
                expected: 32,
                got: 31
            })
        );
        assert_eq!(
            IdentityPublic::from_hex("zz"),
            Err(CryptoError::InvalidHex {
                what: "identity public key"
            })
        );
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            IdentityPublic::from_bytes(&identity),
            Err(CryptoError::InvalidPublicKey)
        );
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            IdentityPublic::from_bytes(&off_curve),
            Err(CryptoError::InvalidPublicKey)
        );
        // Non-canonical encodings y + p (y < 19, so y + p < 2^255) of
        // points that are valid when encoded canonically must be rejected.
        let mut checked = 0;
        for y in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut canonical = [0u8; 32];
                canonical[0] = y;
                canonical[31] |= sign;
                if IdentityPublic::from_bytes(&canonical).is_err() {
                    continue;
                }
                // p + y = 2^255 - 19 + y, little-endian.
                let mut non_canonical = [0xffu8; 32];
                non_canonical[0] = 0xed + y;
                non_canonical[31] = 0x7f | sign;
                assert_eq!(
                    IdentityPublic::from_bytes(&non_canonical),
                    Err(CryptoError::InvalidPublicKey),
                    "y = {y} + p, sign {sign}"
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "no small y decodes to a large-order point");
    }

    #[test]
    fn verify_rejects_tampering() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let key = IdentityKey::generate(&mut rng);
        let other = IdentityKey::generate(&mut rng);
        let msg = b"masked input digest";
        let sig = key.sign(SignContext::CoordinatorMessage, msg);
        let public = key.public();
        assert!(
            public
                .verify(SignContext::CoordinatorMessage, msg, &sig)
                .is_ok()
        );
        assert_eq!(
            public
                .verify(SignContext::ParticipantMessage, msg, &sig)
                .err(),
            Some(CryptoError::BadSignature)
        );
        assert!(
            other
                .public()
                .verify(SignContext::CoordinatorMessage, msg, &sig)
                .is_err()
        );
        let mut bytes = sig.to_bytes();
        bytes[40] ^= 1;
        let bad = Signature::from_bytes(&bytes).expect("64 bytes");
        assert!(
            public
                .verify(SignContext::CoordinatorMessage, msg, &bad)
                .is_err()
        );
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let key = IdentityKey::from_secret_bytes(&unhex(RFC8032_SECRET));
        let dbg = format!("{key:?}");
        assert!(dbg.contains(RFC8032_PUBLIC), "{dbg}");
        assert!(!dbg.contains(RFC8032_SECRET), "{dbg}");
        assert!(!dbg.contains("9d61b1"), "{dbg}");
    }

    #[test]
    fn signature_length_checked() {
        assert!(Signature::from_bytes(&[0u8; 64]).is_ok());
        assert_eq!(
            Signature::from_bytes(&[0u8; 65]),
            Err(CryptoError::InvalidLength {
                what: "signature",
                expected: 64,
                got: 65
            })
        );
    }

    fn batch_fixture(n: usize) -> (Vec<IdentityPublic>, Vec<Vec<u8>>, Vec<Signature>) {
        let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
        let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate(&mut rng)).collect();
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("survivor list confirmed by {i}").into_bytes())
            .collect();
        let sigs = keys
            .iter()
            .zip(&messages)
            .map(|(k, m)| k.sign(SignContext::ParticipantMessage, m))
            .collect();
        (
            keys.iter().map(IdentityKey::public).collect(),
            messages,
            sigs,
        )
    }

    fn batch_of<'a>(
        keys: &'a [IdentityPublic],
        messages: &'a [Vec<u8>],
        sigs: &'a [Signature],
    ) -> Vec<(&'a IdentityPublic, &'a [u8], &'a Signature)> {
        keys.iter()
            .zip(messages)
            .zip(sigs)
            .map(|((k, m), s)| (k, m.as_slice(), s))
            .collect()
    }

    #[test]
    fn the_digest_signed_is_the_digest_checked() {
        use sha2::{Digest, Sha256};
        let key = IdentityKey::from_secret_bytes(&[9; 32]);
        let message = vec![7u8; 100_000];
        let (sig, digest) = key.sign_digested(SignContext::LogRecord, &message);
        let want: [u8; 32] = Sha256::digest(&message).into();
        assert_eq!(digest, want);
        assert_eq!(sig, key.sign(SignContext::LogRecord, &message));
        let checked = key
            .public()
            .verify(SignContext::LogRecord, &message, &sig)
            .expect("valid");
        assert_eq!(checked.digest(), want);
        // The digest is of the message alone: the context is in what is
        // signed, not in the digest, so another context does not verify.
        assert!(
            key.public()
                .verify(SignContext::CoordinatorMessage, &message, &sig)
                .is_err()
        );
    }

    #[test]
    fn a_batch_accepts_what_strict_verification_accepts() {
        let (keys, messages, sigs) = batch_fixture(40);
        let items = batch_of(&keys, &messages, &sigs);
        let checked = verify_batch(SignContext::ParticipantMessage, &items).expect("valid");
        assert_eq!(checked.len(), 40);
        // Each proof carries its own message's digest, in order.
        for (c, m) in checked.iter().zip(&messages) {
            assert_eq!(c.digest(), message_digest(m));
        }
        assert!(
            verify_batch(SignContext::ParticipantMessage, &[])
                .expect("empty")
                .is_empty()
        );
        // The same signatures under another context are refused, naming the first.
        assert_eq!(
            verify_batch(SignContext::CoordinatorMessage, &items).map(|v| v.len()),
            Err(CryptoError::BadSignatureInBatch { index: 0 })
        );
    }

    #[test]
    fn a_batch_refuses_a_signature_moved_to_another_signer() {
        let (keys, messages, mut sigs) = batch_fixture(12);
        // Signer 7's signature presented as signer 8's, over 8's message.
        sigs[8] = sigs[7];
        let items = batch_of(&keys, &messages, &sigs);
        assert_eq!(
            verify_batch(SignContext::ParticipantMessage, &items).map(|v| v.len()),
            Err(CryptoError::BadSignatureInBatch { index: 8 })
        );
    }

    proptest::proptest! {
        /// Tampering with any message or signature of a batch is caught, and
        /// the error names the first tampered item.
        #[test]
        fn a_batch_names_the_first_bad_signature(
            n in 1usize..20,
            tampered in proptest::collection::btree_set(0usize..20, 0..4),
            flip_signature in proptest::bool::ANY,
            bit in 0usize..256,
        ) {
            let (keys, mut messages, mut sigs) = batch_fixture(n);
            let tampered: Vec<usize> = tampered.into_iter().filter(|&i| i < n).collect();
            for &i in &tampered {
                if flip_signature {
                    let mut bytes = sigs[i].to_bytes();
                    bytes[bit / 8] ^= 1 << (bit % 8);
                    sigs[i] = Signature::from_bytes(&bytes).expect("64 bytes");
                } else {
                    messages[i].push(b'!');
                }
            }
            let items = batch_of(&keys, &messages, &sigs);
            let got = verify_batch(SignContext::ParticipantMessage, &items).map(|v| v.len());
            match tampered.first() {
                None => proptest::prop_assert_eq!(got, Ok(n)),
                Some(&index) => {
                    proptest::prop_assert_eq!(got, Err(CryptoError::BadSignatureInBatch { index }))
                }
            }
        }
    }
}
