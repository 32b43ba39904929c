//! The report's detached signature: `report.html.sig` holds one line, the
//! 64-byte Ed25519 signature in hex, by the coordinator's identity key
//! under [`SignContext::RegulatorReport`] over the SHA-256 of the exact
//! HTML bytes (the identity module signs `context || SHA-256(message)`).
//! Anyone with the consortium file checks it against the coordinator key
//! listed there; the HTML needs no change to be signed.
//!
//! ```
//! use fedcredit_crypto::identity::IdentityKey;
//! use fedcredit_report::signature::{parse, sign_text};
//! let key = IdentityKey::from_secret_bytes(&[5; 32]);
//! let text = sign_text(&key, b"<html></html>");
//! assert_eq!(text.len(), 129); // 128 hex digits and a newline
//! let sig = parse(text.as_bytes()).unwrap();
//! assert!(fedcredit_report::signature::check(b"<html></html>", &sig, &key.public()).is_ok());
//! assert!(fedcredit_report::signature::check(b"<html> </html>", &sig, &key.public()).is_err());
//! ```

use fedcredit_crypto::identity::{IdentityKey, IdentityPublic, SignContext, Signature};
use fedcredit_referee::consortium::Consortium;
use sha2::{Digest, Sha256};

use crate::error::{ReportError, Result};

/// The `.sig` file's text for `html`: the signature in hex and a newline.
pub fn sign_text(key: &IdentityKey, html: &[u8]) -> String {
    let sig = key.sign(SignContext::RegulatorReport, html);
    let mut text = hex::encode(sig.to_bytes());
    text.push('\n');
    text
}

/// Reads a `.sig` file's bytes: exactly 128 hex digits, optionally
/// surrounded by whitespace.
pub fn parse(file: &[u8]) -> Result<Signature> {
    let text = std::str::from_utf8(file)
        .map_err(|_| ReportError::SignatureMalformed("it is not text".into()))?
        .trim();
    if text.is_empty() {
        return Err(ReportError::SignatureMalformed("it is empty".into()));
    }
    if text.len() != 128 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReportError::SignatureMalformed(format!(
            "expected 128 hex digits (an Ed25519 signature), found {} characters{}",
            text.chars().count(),
            if text.len() < 128 {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|e| ReportError::SignatureMalformed(e.to_string()))?;
    Signature::from_bytes(&bytes).map_err(|e| ReportError::SignatureMalformed(e.to_string()))
}

/// Checks `sig` on `html` under `key`.
pub fn check(html: &[u8], sig: &Signature, key: &IdentityPublic) -> Result<()> {
    key.verify(SignContext::RegulatorReport, html, sig)
        .map(|_checked| ())
        .map_err(|_| {
            ReportError::SignatureMismatch(format!(
                "the signature does not verify under the key {key}"
            ))
        })
}

/// A verified report: its hash and who signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Hex SHA-256 of the HTML.
    pub sha256: String,
    /// The coordinator key that signed it (hex).
    pub coordinator: String,
}

/// Checks a report against the coordinator key of `consortium`. A
/// signature that verifies under a member's key instead is named as such;
/// anything else means the HTML changed after signing or another key signed it.
pub fn verify(html: &[u8], sig_file: &[u8], consortium: &Consortium) -> Result<Verified> {
    let sig = parse(sig_file)?;
    let coordinator = consortium.roster.coordinator();
    if check(html, &sig, coordinator).is_ok() {
        return Ok(Verified {
            sha256: hex::encode(Sha256::digest(html)),
            coordinator: coordinator.to_hex(),
        });
    }
    if let Some(m) = consortium
        .roster
        .members()
        .find(|m| check(html, &sig, &m.key).is_ok())
    {
        return Err(ReportError::SignatureMismatch(format!(
            "the report is signed by member {}'s key, not by the coordinator key {coordinator} of {}",
            m.id,
            consortium.path.display()
        )));
    }
    Err(ReportError::SignatureMismatch(format!(
        "the signature does not verify under the coordinator key {coordinator} of {}: \
         the report was changed after it was signed, or another key signed it",
        consortium.path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consortium() -> (Consortium, IdentityKey, IdentityKey) {
        let coordinator = IdentityKey::from_secret_bytes(&[9; 32]);
        let member = IdentityKey::from_secret_bytes(&[1; 32]);
        let key = |s: u8| IdentityKey::from_secret_bytes(&[s; 32]).public().to_hex();
        let toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\
             [job]\nid = \"sum-1\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n\
             [[participants]]\nid = \"bank-a\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"bank-b\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"bank-c\"\npublic_key = \"{}\"\n",
            key(9),
            key(1),
            key(2),
            key(3)
        );
        let c = Consortium::parse(std::path::Path::new("consortium.toml"), &toml).expect("parse");
        (c, coordinator, member)
    }

    fn message(r: Result<Verified>) -> String {
        r.expect_err("must not verify").to_string()
    }

    #[test]
    fn the_coordinators_signature_verifies_and_nothing_else_does() {
        let (c, coordinator, member) = consortium();
        let html = b"<!DOCTYPE html><p>report</p>".to_vec();
        let sig = sign_text(&coordinator, &html);
        let ok = verify(&html, sig.as_bytes(), &c).expect("verifies");
        assert_eq!(ok.coordinator, coordinator.public().to_hex());
        assert_eq!(ok.sha256, hex::encode(Sha256::digest(&html)));

        // One byte of the HTML changed.
        let mut tampered = html.clone();
        tampered[20] ^= 1;
        let m = message(verify(&tampered, sig.as_bytes(), &c));
        assert!(m.contains("changed after it was signed"), "{m}");

        // A member's key.
        let by_member = sign_text(&member, &html);
        let m = message(verify(&html, by_member.as_bytes(), &c));
        assert!(m.contains("signed by member bank-a's key"), "{m}");

        // A key outside the consortium.
        let other = sign_text(&IdentityKey::from_secret_bytes(&[42; 32]), &html);
        let m = message(verify(&html, other.as_bytes(), &c));
        assert!(
            m.contains("does not verify under the coordinator key"),
            "{m}"
        );

        // The coordinator key, but another signing context (a log record's).
        let wrong = hex::encode(coordinator.sign(SignContext::LogRecord, &html).to_bytes());
        let m = message(verify(&html, wrong.as_bytes(), &c));
        assert!(m.contains("does not verify"), "{m}");
    }

    #[test]
    fn truncated_empty_or_garbled_files_are_malformed() {
        let (c, coordinator, _) = consortium();
        let html = b"<p>r</p>";
        let sig = sign_text(&coordinator, html);
        for (bad, want) in [
            (&sig.as_bytes()[..70], "found 70 characters (truncated?)"),
            (&b""[..], "it is empty"),
            (&b"\n"[..], "it is empty"),
            (&[0xff, 0xfe][..], "not text"),
        ] {
            let m = message(verify(html, bad, &c));
            assert!(m.contains("malformed") && m.contains(want), "{m}");
        }
        let garbled = sig.replace('a', "z");
        if garbled != sig {
            let m = message(verify(html, garbled.as_bytes(), &c));
            assert!(m.contains("128 hex digits"), "{m}");
        }
    }
}
