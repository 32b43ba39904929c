//! ChaCha20-Poly1305 (RFC 8439) for Shamir shares sent through the
//! coordinator.
//!
//! The nonce is fixed to 96 zero bits. That is safe here, and only here,
//! because every key comes from [`crate::kx::derive_key`] with
//! [`KeyPurpose::ShareEncryption`](crate::kx::KeyPurpose::ShareEncryption)
//! and is bound to one session, one sender and one recipient, and each
//! sender encrypts exactly one message to each recipient per session. A key
//! must never encrypt two messages: callers that need to do so must derive
//! separate keys.
//!
//! Ciphertext layout: `ChaCha20(key, nonce 0, counter from 1) XOR plaintext
//! || Poly1305 tag (16 bytes)`, as RFC 8439 §2.8.
//!
//! ```
//! use fedcredit_crypto::aead::{open, seal};
//!
//! let key = [7u8; 32];
//! let ct = seal(&key, b"session|from 3|to 5", b"share bytes");
//! assert_eq!(ct.len(), b"share bytes".len() + 16);
//! assert_eq!(open(&key, b"session|from 3|to 5", &ct)?.as_slice(), b"share bytes");
//! assert!(open(&key, b"session|from 3|to 6", &ct).is_err());
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// Encrypts `plaintext` under `key` with an all-zero 96-bit nonce and
/// authenticates `associated_data`; returns ciphertext `||` 16-byte tag.
///
/// The fixed nonce is safe because each key from
/// [`crate::kx::derive_key`] is bound to a session, a sender and a recipient
/// and encrypts exactly one message. Never call `seal` twice with one key.
///
/// # Panics
///
/// If `plaintext` is longer than ChaCha20-Poly1305 allows (about 256 GiB).
pub fn seal(key: &[u8; 32], associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .expect("ChaCha20-Poly1305 plaintext must be shorter than 256 GiB")
}

/// Decrypts and authenticates a [`seal`] output.
///
/// Errors: [`CryptoError::Decryption`] if the key or associated data are
/// wrong or the ciphertext was modified or truncated.
pub fn open(
    key: &[u8; 32],
    associated_data: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: ciphertext,
                aad: associated_data,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Decryption)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20;
    use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    fn key() -> [u8; 32] {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        k
    }

    /// Computed independently (Python `cryptography`'s ChaCha20Poly1305,
    /// key = 00 01 .. 1f, nonce = 12 zero bytes).
    #[test]
    fn known_answer() {
        let ct = seal(&key(), b"ad", b"share payload");
        assert_eq!(
            hex::encode(&ct),
            "6bd02343c8c6d6b06a0d3300cb28bcff6dbf5922323c2b4b085bcd8727"
        );
        assert_eq!(
            open(&key(), b"ad", &ct).expect("authentic").as_slice(),
            b"share payload"
        );
    }

    /// RFC 8439 §2.8: the body is the ChaCha20 keystream from block 1.
    #[test]
    fn body_is_chacha20_from_counter_one() {
        let pt = [0u8; 100];
        let ct = seal(&key(), b"", &pt);
        let mut ks = [0u8; 100];
        let mut c = ChaCha20::new(&key().into(), &[0u8; 12].into());
        c.seek(64u32);
        c.apply_keystream(&mut ks);
        assert_eq!(&ct[..100], &ks[..]);
        assert_eq!(ct.len(), 100 + TAG_LEN);
    }

    #[test]
    fn tampering_fails() {
        let ct = seal(&key(), b"ad", b"x");
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x80;
            assert_eq!(open(&key(), b"ad", &bad), Err(CryptoError::Decryption));
        }
        assert_eq!(
            open(&key(), b"ad", &ct[..ct.len() - 1]),
            Err(CryptoError::Decryption)
        );
        assert_eq!(open(&key(), b"ad", &[]), Err(CryptoError::Decryption));
        assert_eq!(open(&[1; 32], b"ad", &ct), Err(CryptoError::Decryption));
    }

    #[test]
    fn empty_plaintext() {
        let ct = seal(&key(), b"ad", b"");
        assert_eq!(ct.len(), TAG_LEN);
        assert!(open(&key(), b"ad", &ct).expect("authentic").is_empty());
    }
}
