use std::path::PathBuf;

/// Errors at the wire edge: config files, envelopes, message contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A config file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    ReadConfig {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A config file is not valid TOML or does not fit the expected shape.
    #[error("{}: {message}", file.display())]
    ParseConfig {
        /// The file.
        file: PathBuf,
        /// The parser's message (it names the key and line).
        message: String,
    },
    /// A config value is present but not acceptable.
    #[error("{}: `{key}`: {expected}", file.display())]
    InvalidConfig {
        /// The file.
        file: PathBuf,
        /// The dotted key.
        key: String,
        /// What was expected instead.
        expected: String,
    },
    /// A payload is not a valid protobuf message.
    #[error("{what}: malformed protobuf: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// The sender is not a member of the consortium.
    #[error("sender {0:?} is not a member of the consortium")]
    UnknownSender(String),
    /// A signature does not verify under the claimed author's key.
    #[error("bad signature on a message from {who}")]
    BadSignature {
        /// The claimed author.
        who: String,
    },
    /// A required field is missing or malformed.
    #[error("{what}: {problem}")]
    Field {
        /// Which field.
        what: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A coordinator-signed answer sent in pieces broke the pieces' order.
    #[error(transparent)]
    Chunked(#[from] crate::chunks::ChunkedReplyError),
    /// A crypto primitive rejected a value.
    #[error(transparent)]
    Crypto(#[from] fedcredit_crypto::CryptoError),
}
