//! Identity key files: one line of 64 hex digits (the Ed25519 secret key),
//! created with mode 0600 so only the owner can read it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedcredit_crypto::identity::{IdentityKey, IdentityPublic};
use zeroize::Zeroizing;

/// Writes a fresh key to `path` and returns its public key.
pub fn generate(path: &Path, force: bool) -> Result<IdentityPublic> {
    let key = IdentityKey::generate(&mut rand::rngs::OsRng);
    save(&key, path, force)?;
    Ok(key.public())
}

/// Writes `key` to `path` (mode 0600).
pub fn save(key: &IdentityKey, path: &Path, force: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "{}: cannot create the key file (use --force to overwrite)",
            path.display()
        )
    })?;
    file.write_all(file_text(key).as_bytes())
        .with_context(|| format!("{}: cannot write the key", path.display()))?;
    Ok(())
}

/// The text of a key file for `key` (the secret key in hex, one line), for
/// writers that place the file themselves (`fedcredit provision`).
pub fn file_text(key: &IdentityKey) -> Zeroizing<String> {
    use std::fmt::Write as _;
    // Sized once, so that no reallocation leaves a copy of the key behind.
    let mut text = Zeroizing::new(String::with_capacity(65));
    for byte in key.secret_bytes().iter() {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text.push('\n');
    text
}

/// Reads a key file.
pub fn load(path: &Path) -> Result<IdentityKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the identity key file", path.display()))?,
    );
    let mut bytes = Zeroizing::new([0u8; 32]);
    if hex::decode_to_slice(text.trim(), bytes.as_mut()).is_err() {
        bail!(
            "{}: expected one line of 64 hex digits (an Ed25519 secret key written by `fedcredit keygen`)",
            path.display()
        );
    }
    Ok(IdentityKey::from_secret_bytes(&bytes))
}
