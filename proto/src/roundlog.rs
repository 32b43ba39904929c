//! The round log's format, shared by the coordinator (which writes it) and
//! the auditor (which replays it): framing, hashing, signing and the chain
//! check. What the records mean is checked by the `audit` crate.
//!
//! A log is a sequence of length-delimited `LogRecord`s (a protobuf varint
//! length, then the record in prost's canonical encoding: the body field,
//! then the signature field). Record `n`'s body holds `seq = n` and the hash
//! of record `n−1` (zeros for the first), and carries the coordinator's
//! signature over the body. A record's hash is
//! `SHA-256("fedcredit/v1/log-record-hash\0" || SHA-256(body) || signature)`
//! ([`record_hash`]): the body, which holds every masked vector and
//! published sum, is hashed once, for the signature and the chain alike.

use fedcredit_crypto::identity::{IdentityKey, IdentityPublic, SignContext, Signature};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::v1::LogBody;

/// `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// A record's hash from the SHA-256 of its body (which the coordinator's
/// signature covers, so signing or verifying has it) and its signature.
/// With the canonical framing [`split_record`] insists on, these determine
/// every byte of the record.
pub fn record_hash(body_digest: &[u8; 32], signature: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/log-record-hash\0");
    h.update(body_digest);
    h.update(signature);
    h.finalize().into()
}

/// A record's body and hash (as [`read`] takes it), its signature unchecked:
/// for a writer reading back a record it appended, which it knows by hash.
pub fn body_and_hash(record: &[u8]) -> Result<(&[u8], [u8; 32]), String> {
    let (body, signature) = split_record(record)?;
    Ok((body, record_hash(&Sha256::digest(body).into(), signature)))
}

/// The field headers prost writes around a record's body and signature:
/// `(key and length of the body, key and length of the signature)`.
fn framing(body_len: usize, signature_len: usize) -> (Vec<u8>, Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut head = Vec::with_capacity(11);
    encode_key(1, WireType::LengthDelimited, &mut head);
    encode_varint(body_len as u64, &mut head);
    let mut tail = Vec::with_capacity(11);
    encode_key(2, WireType::LengthDelimited, &mut tail);
    encode_varint(signature_len as u64, &mut tail);
    (head, tail)
}

/// Splits a record (without its length prefix) into its body and signature,
/// refusing any encoding but the canonical one: since the hash covers the
/// body by its digest, no other byte may vary (fields reordered or
/// repeated, lengths padded, unknown fields).
pub fn split_record(record: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let not_canonical = || "not a log record in its canonical encoding".to_owned();
    let mut cursor = record;
    let key = prost::encoding::decode_varint(&mut cursor)
        .map_err(|e| format!("not a log record: {e}"))?;
    if key != 0x0a {
        return Err(not_canonical());
    }
    let body_len = prost::encoding::decode_varint(&mut cursor)
        .map_err(|e| format!("not a log record: {e}"))?;
    let body_len = usize::try_from(body_len)
        .ok()
        .filter(|l| *l <= cursor.len())
        .ok_or_else(|| "not a log record: the body runs past the record".to_owned())?;
    let (body, mut rest) = cursor.split_at(body_len);
    let key =
        prost::encoding::decode_varint(&mut rest).map_err(|e| format!("not a log record: {e}"))?;
    let sig_len =
        prost::encoding::decode_varint(&mut rest).map_err(|e| format!("not a log record: {e}"))?;
    if key != 0x12 || sig_len != rest.len() as u64 {
        return Err(not_canonical());
    }
    let (head, tail) = framing(body.len(), rest.len());
    if head.len() + body.len() + tail.len() + rest.len() != record.len() {
        return Err(not_canonical());
    }
    Ok((body, rest))
}

/// Signs `body` and frames the record; returns the framed bytes to append
/// and the record's hash (the next record's `prev_hash`).
pub fn seal_record(key: &IdentityKey, body: &LogBody) -> (Vec<u8>, [u8; 32]) {
    let sealed = SealedRecord::new(key, body);
    let mut framed = Vec::with_capacity(sealed.len());
    for part in sealed.parts() {
        framed.extend_from_slice(part);
    }
    (framed, sealed.hash)
}

/// A signed, framed record as three consecutive parts (length prefix and
/// the body's field header; the encoded body; the signature field) rather
/// than one buffer: a writer appends them in turn, so a record carrying a
/// large published sum is held once, as its encoded body, not also as the
/// encoded record and again as the framed one. The bytes are those of
/// [`seal_record`], which is built on this.
#[derive(Debug)]
pub struct SealedRecord {
    head: Vec<u8>,
    body: Vec<u8>,
    tail: Vec<u8>,
    /// SHA-256 of the record's encoding (the next record's `prev_hash`).
    pub hash: [u8; 32],
}

impl SealedRecord {
    /// Encodes and signs `body`.
    pub fn new(key: &IdentityKey, body: &LogBody) -> Self {
        use prost::encoding::encode_varint;
        let body = body.encode_to_vec();
        let (signature, digest) = key.sign_digested(SignContext::LogRecord, &body);
        let signature = signature.to_bytes();
        // `LogRecord { body = 1, signature = 2 }` as prost encodes it: each
        // field's key, its length, its bytes (a body is never empty: it
        // holds a 32-byte prev_hash).
        let (field_head, mut tail) = framing(body.len(), signature.len());
        tail.extend_from_slice(&signature);
        let record_len = field_head.len() + body.len() + tail.len();
        let mut head = Vec::with_capacity(10 + field_head.len());
        encode_varint(record_len as u64, &mut head);
        head.extend_from_slice(&field_head);
        Self {
            head,
            body,
            tail,
            hash: record_hash(&digest, &signature),
        }
    }

    /// The framed record's bytes, in order.
    pub fn parts(&self) -> [&[u8]; 3] {
        [&self.head, &self.body, &self.tail]
    }

    /// Bytes of the framed record (length prefix included).
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    /// Never: a record always has a length prefix.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Byte offset of its length prefix in the file.
    pub offset: u64,
    /// Its decoded body.
    pub body: LogBody,
    /// Its hash.
    pub hash: [u8; 32],
}

/// How the log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a good record.
    Clean,
    /// The last record is incomplete (a torn write, or a cut file).
    Truncated {
        /// Where the incomplete record starts.
        offset: u64,
        /// Its would-be sequence number.
        record: u64,
        /// What is missing.
        detail: String,
    },
    /// A record fails a check; nothing from it on is trusted.
    Broken {
        /// Where it starts.
        offset: u64,
        /// Its position (sequence number it should have).
        record: u64,
        /// Which check failed.
        problem: String,
    },
}

/// A log read as far as it holds.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The good records, in order.
    pub entries: Vec<Entry>,
    /// How reading ended.
    pub end: End,
    /// Total bytes read (the length of the good prefix).
    pub good_len: u64,
}

/// Reads a log: framing, decoding, sequence numbers, the hash chain and, if
/// `coordinator` is given, the coordinator's signature on every record. It
/// stops at the first record that fails and says why in [`LogFile::end`].
pub fn read(bytes: &[u8], coordinator: Option<&IdentityPublic>) -> LogFile {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let mut prev = GENESIS;
    let end = loop {
        if pos == bytes.len() {
            break End::Clean;
        }
        let record = entries.len() as u64;
        let offset = pos as u64;
        let mut cursor = &bytes[pos..];
        let before = cursor.len();
        let len = match prost::encoding::decode_varint(&mut cursor) {
            Ok(l) => l,
            Err(_) if before < 10 => {
                break End::Truncated {
                    offset,
                    record,
                    detail: "the length prefix is cut off".into(),
                };
            }
            Err(e) => {
                break End::Broken {
                    offset,
                    record,
                    problem: format!("bad length prefix: {e}"),
                };
            }
        };
        let header = before - cursor.len();
        let Ok(len) = usize::try_from(len) else {
            break End::Broken {
                offset,
                record,
                problem: format!("record length {len} is impossible"),
            };
        };
        if cursor.len() < len {
            break End::Truncated {
                offset,
                record,
                detail: format!(
                    "the record claims {len} bytes, only {} remain",
                    cursor.len()
                ),
            };
        }
        let encoded = &cursor[..len];
        let parsed = split_record(encoded).and_then(|(body_bytes, signature)| {
            LogBody::decode(body_bytes)
                .map(|b| (body_bytes, signature, b))
                .map_err(|e| format!("bad record body: {e}"))
        });
        let (body_bytes, signature, body) = match parsed {
            Ok(x) => x,
            Err(problem) => {
                break End::Broken {
                    offset,
                    record,
                    problem,
                };
            }
        };
        if body.seq != record {
            break End::Broken {
                offset,
                record,
                problem: format!(
                    "sequence number {} where {record} was expected (a record was removed or moved)",
                    body.seq
                ),
            };
        }
        if body.prev_hash.as_ref() != prev {
            break End::Broken {
                offset,
                record,
                problem: "the hash of the previous record does not match (a record before it was altered, removed or moved)".into(),
            };
        }
        // The body's digest, taken once: by the signature check, or (with no
        // key to check against) directly.
        let digest = match coordinator {
            Some(key) => {
                let checked = Signature::from_bytes(signature)
                    .ok()
                    .and_then(|s| key.verify(SignContext::LogRecord, body_bytes, &s).ok());
                match checked {
                    Some(c) => c.digest(),
                    None => {
                        break End::Broken {
                            offset,
                            record,
                            problem: "the coordinator's signature does not verify".into(),
                        };
                    }
                }
            }
            None => Sha256::digest(body_bytes).into(),
        };
        let hash = record_hash(&digest, signature);
        prev = hash;
        entries.push(Entry { offset, body, hash });
        pos += header + len;
    };
    LogFile {
        entries,
        end,
        good_len: pos as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{JobEnded, LogRecord, log_body::Entry as E};

    fn log(n: u64, key: &IdentityKey) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = GENESIS;
        for seq in 0..n {
            let body = LogBody {
                seq,
                prev_hash: prev.to_vec().into(),
                unix_millis: 0,
                entry: Some(E::JobEnded(JobEnded {
                    ok: true,
                    reason: format!("r{seq}"),
                    model_json: String::new(),
                    resumable: false,
                })),
            };
            let (framed, hash) = seal_record(key, &body);
            out.extend_from_slice(&framed);
            prev = hash;
        }
        out
    }

    #[test]
    fn sealed_parts_are_the_prost_encoding() {
        let key = IdentityKey::generate(&mut rand::rngs::OsRng);
        for n in [0usize, 1, 127, 128, 70_000] {
            let body = LogBody {
                seq: n as u64,
                prev_hash: vec![1; 32].into(),
                unix_millis: 5,
                entry: Some(crate::v1::log_body::Entry::RoundCompleted(
                    crate::v1::RoundCompleted {
                        sum: vec![9; n].into(),
                        ..Default::default()
                    },
                )),
            };
            let (framed, hash) = seal_record(&key, &body);
            let body_bytes = body.encode_to_vec();
            let signature = key.sign(SignContext::LogRecord, &body_bytes).to_bytes();
            let body_digest: [u8; 32] = Sha256::digest(&body_bytes).into();
            let record = LogRecord {
                signature: signature.to_vec().into(),
                body: body_bytes.into(),
            }
            .encode_to_vec();
            let mut expected = Vec::new();
            prost::encoding::encode_varint(record.len() as u64, &mut expected);
            expected.extend_from_slice(&record);
            assert_eq!(framed, expected, "body of {n} sum bytes");
            assert_eq!(hash, record_hash(&body_digest, &signature));
            let (b, sig) = split_record(&record).expect("canonical");
            assert_eq!((b, sig), (&body.encode_to_vec()[..], &signature[..]));
        }
    }

    #[test]
    fn reads_back_what_was_written() {
        let key = IdentityKey::from_secret_bytes(&[3; 32]);
        let bytes = log(5, &key);
        let file = read(&bytes, Some(&key.public()));
        assert_eq!(file.end, End::Clean);
        assert_eq!(file.entries.len(), 5);
        assert_eq!(file.good_len, bytes.len() as u64);
    }

    /// The hash covers a record's body by its digest, so every other byte
    /// is pinned by the framing: encodings prost would decode to the same
    /// record, under a signature that verifies, are refused.
    #[test]
    fn only_the_canonical_encoding_of_a_record_is_read() {
        use prost::encoding::encode_varint;
        let key = IdentityKey::from_secret_bytes(&[3; 32]);
        let framed = log(1, &key);
        let mut cursor = &framed[..];
        prost::encoding::decode_varint(&mut cursor).expect("length prefix");
        let record = cursor.to_vec();
        let (body, sig) = split_record(&record).expect("canonical");
        let field = |key: u8, bytes: &[u8], padded: bool| {
            let mut out = vec![key];
            if padded {
                // The length as a two-byte varint where one would do.
                assert!(bytes.len() < 128);
                out.extend_from_slice(&[0x80 | bytes.len() as u8, 0]);
            } else {
                encode_varint(bytes.len() as u64, &mut out);
            }
            out.extend_from_slice(bytes);
            out
        };
        let (b, s) = (field(0x0a, body, false), field(0x12, sig, false));
        let variants: [(&str, Vec<u8>); 4] = [
            ("fields swapped", [s.clone(), b.clone()].concat()),
            (
                "an unknown field",
                [b.clone(), s.clone(), vec![0x18, 1]].concat(),
            ),
            ("the body twice", [b.clone(), b.clone(), s.clone()].concat()),
            (
                "a padded length",
                [b.clone(), field(0x12, sig, true)].concat(),
            ),
        ];
        for (what, variant) in variants {
            let decoded = LogRecord::decode(&variant[..]).expect("prost reads it");
            assert_eq!(
                (&decoded.body[..], &decoded.signature[..]),
                (body, sig),
                "{what}"
            );
            let mut log = Vec::new();
            encode_varint(variant.len() as u64, &mut log);
            log.extend_from_slice(&variant);
            let file = read(&log, Some(&key.public()));
            assert!(file.entries.is_empty(), "{what}");
            assert!(
                matches!(&file.end, End::Broken { record: 0, problem, .. } if problem.contains("canonical")),
                "{what}: {:?}",
                file.end
            );
        }
    }

    #[test]
    fn a_cut_tail_is_truncation_not_breakage() {
        let key = IdentityKey::from_secret_bytes(&[3; 32]);
        let bytes = log(4, &key);
        for cut in 1..20 {
            let file = read(&bytes[..bytes.len() - cut], Some(&key.public()));
            assert_eq!(file.entries.len(), 3, "cut {cut}");
            assert!(
                matches!(file.end, End::Truncated { record: 3, .. }),
                "cut {cut}: {:?}",
                file.end
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_found() {
        let key = IdentityKey::from_secret_bytes(&[3; 32]);
        let bytes = log(3, &key);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let file = read(&b, Some(&key.public()));
            assert!(
                file.end != End::Clean || file.entries.len() != 3,
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn another_coordinator_key_is_refused() {
        let key = IdentityKey::from_secret_bytes(&[3; 32]);
        let other = IdentityKey::from_secret_bytes(&[4; 32]);
        let file = read(&log(2, &key), Some(&other.public()));
        assert!(matches!(file.end, End::Broken { record: 0, .. }));
    }
}
