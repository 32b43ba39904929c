//! The round log's format, shared by the coordinator (which writes it) and
//! the auditor (which replays it): framing, hashing, signing and the chain
//! check. What the records mean is checked by the `audit` crate.
//!
//! A log is a sequence of length-delimited `LogRecord`s (a protobuf varint
//! length, then the record). Record `n`'s body holds `seq = n` and the
//! SHA-256 of record `n−1`'s encoding (zeros for the first), and carries the
//! coordinator's signature over the body.

use fedcredit_crypto::identity::{IdentityKey, IdentityPublic, SignContext, Signature};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::v1::{LogBody, LogRecord};

/// `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 of a record's encoding (without its length prefix).
pub fn record_hash(record: &[u8]) -> [u8; 32] {
    Sha256::digest(record).into()
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
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
        let body = body.encode_to_vec();
        let signature = key.sign(SignContext::LogRecord, &body).to_bytes();
        // `LogRecord { body = 1, signature = 2 }` as prost encodes it: each
        // field's key, its length, its bytes (a body is never empty: it
        // holds a 32-byte prev_hash).
        let mut tail = Vec::with_capacity(2 + signature.len());
        encode_key(2, WireType::LengthDelimited, &mut tail);
        encode_varint(signature.len() as u64, &mut tail);
        tail.extend_from_slice(&signature);
        let field_head = 1 + encoded_len_varint(body.len() as u64);
        let record_len = field_head + body.len() + tail.len();
        let mut head = Vec::with_capacity(10 + field_head);
        encode_varint(record_len as u64, &mut head);
        let prefix = head.len();
        encode_key(1, WireType::LengthDelimited, &mut head);
        encode_varint(body.len() as u64, &mut head);
        let mut hasher = Sha256::new();
        hasher.update(&head[prefix..]);
        hasher.update(&body);
        hasher.update(&tail);
        Self {
            head,
            body,
            tail,
            hash: hasher.finalize().into(),
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
        let parsed = LogRecord::decode(encoded)
            .map_err(|e| format!("not a log record: {e}"))
            .and_then(|r| {
                LogBody::decode(r.body.as_ref())
                    .map(|b| (r, b))
                    .map_err(|e| format!("bad record body: {e}"))
            });
        let (rec, body) = match parsed {
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
        if let Some(key) = coordinator {
            let ok = Signature::from_bytes(&rec.signature)
                .ok()
                .is_some_and(|s| key.verify(SignContext::LogRecord, &rec.body, &s).is_ok());
            if !ok {
                break End::Broken {
                    offset,
                    record,
                    problem: "the coordinator's signature does not verify".into(),
                };
            }
        }
        let hash = record_hash(encoded);
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
    use crate::v1::{JobEnded, log_body::Entry as E};

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
            let record = LogRecord {
                signature: key
                    .sign(SignContext::LogRecord, &body_bytes)
                    .to_bytes()
                    .to_vec()
                    .into(),
                body: body_bytes.into(),
            }
            .encode_to_vec();
            let mut expected = Vec::new();
            prost::encoding::encode_varint(record.len() as u64, &mut expected);
            expected.extend_from_slice(&record);
            assert_eq!(framed, expected, "body of {n} sum bytes");
            assert_eq!(hash, record_hash(&record));
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
