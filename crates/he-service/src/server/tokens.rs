//! API tokens: the tokens file (names, hashes, creation times, quota
//! overrides), drawing a new token, and finding who presents one.
//!
//! A token is `he_` and 64 hex digits: 256 bits from the OS CSPRNG. The
//! file keeps only its SHA-256. A fast hash is enough here: slow hashes
//! (argon2, scrypt) exist to make guessing low-entropy passwords from a
//! stolen hash expensive, and a 256-bit random token cannot be guessed
//! whatever the hash costs; one SHA-256 per request keeps authentication
//! cheap. Lookup is by hash, so no comparison of secrets leaks timing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::quota::{Quota, QuotaOverrides};

/// What a token looks like: this prefix, then 64 lowercase hex digits.
pub const TOKEN_PREFIX: &str = "he_";
/// Version of the tokens file format.
pub const TOKENS_FILE_VERSION: u32 = 1;
/// Largest tokens file read (a million tokens would be far less).
const MAX_TOKENS_FILE: u64 = 64 << 20;

/// One token in the tokens file: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (unique in the file; jobs belong to it, logs name it).
    pub name: String,
    /// SHA-256 of the token, 64 lowercase hex digits.
    pub sha256: String,
    /// When it was created, in seconds since 1970-01-01 UTC.
    pub created: u64,
    /// Limits of this token that differ from the server's defaults.
    #[serde(default, skip_serializing_if = "QuotaOverrides::is_empty")]
    pub quota: QuotaOverrides,
}

/// The tokens file: one JSON document,
/// `{"version": 1, "tokens": [{"name": ..., "sha256": ..., "created": ...}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// [`TOKENS_FILE_VERSION`].
    pub version: u32,
    /// The tokens, in order of creation.
    pub tokens: Vec<TokenEntry>,
    /// The file it was loaded from ([`TokenFile::load`]): a server given
    /// such a file reads it again when it changes, so that `he token
    /// revoke` and `he token create` take effect without a restart.
    #[serde(skip)]
    source: Option<PathBuf>,
    /// The stamp of that file as it was read (taken before reading it, so
    /// that a change made while it was read is seen as a change).
    #[serde(skip)]
    stamp: Option<FileStamp>,
}

impl Default for TokenFile {
    fn default() -> Self {
        TokenFile {
            version: TOKENS_FILE_VERSION,
            tokens: Vec::new(),
            source: None,
            stamp: None,
        }
    }
}

/// What tells a tokens file changed: its modification time, length and
/// inode (a file replaced by a rename has a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` now.
    pub(super) fn of(path: &Path) -> std::io::Result<Self> {
        Ok(Self::from_metadata(&std::fs::metadata(path)?))
    }

    /// The stamp of a file whose metadata is `m`.
    fn from_metadata(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        }
    }
}

/// SHA-256 of `token`, as 64 lowercase hex digits.
#[must_use]
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` may name a token: 1 to 64 letters, digits, `-`, `_`, `.`, `@`.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

impl TokenFile {
    /// Parses and checks a tokens file: version, names, hashes, no name twice.
    pub fn from_json(text: &str) -> Result<Self> {
        let f: TokenFile =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("tokens file: {e}")))?;
        if f.version != TOKENS_FILE_VERSION {
            return Err(Error::Config(format!(
                "tokens file version {} (this server reads {TOKENS_FILE_VERSION})",
                f.version
            )));
        }
        for (i, t) in f.tokens.iter().enumerate() {
            if !valid_name(&t.name) {
                return Err(Error::Config(format!(
                    "tokens file: token name {:?} (1 to 64 of A-Z a-z 0-9 - _ . @)",
                    t.name
                )));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Config(format!(
                    "tokens file: the hash of {} is not 64 hex digits",
                    t.name
                )));
            }
            if f.tokens[..i].iter().any(|o| o.name == t.name) {
                return Err(Error::Config(format!(
                    "tokens file: the name {} appears twice",
                    t.name
                )));
            }
            if let Some(o) = f.tokens[..i]
                .iter()
                .find(|o| o.sha256.eq_ignore_ascii_case(&t.sha256))
            {
                return Err(Error::Config(format!(
                    "tokens file: {} and {} have the same token hash; a token must \
                     name one holder (revoke one and create it again)",
                    o.name, t.name
                )));
            }
        }
        Ok(f)
    }

    /// Reads a tokens file (at most 64 MiB, a regular file).
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Config(format!("tokens file {}: {e}", path.display())))?;
        if !meta.is_file() || meta.len() > MAX_TOKENS_FILE {
            return Err(Error::Config(format!(
                "tokens file {} is not a regular file of at most {MAX_TOKENS_FILE} bytes",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("tokens file {}: {e}", path.display())))?;
        let mut f = Self::from_json(&text)?;
        f.source = Some(path.to_path_buf());
        f.stamp = Some(FileStamp::from_metadata(&meta));
        Ok(f)
    }

    /// The stamp of the file this was loaded from, as it was read.
    pub(super) fn stamp(&self) -> Option<FileStamp> {
        self.stamp
    }

    /// The file this was loaded from, if it was.
    #[must_use]
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The file as pretty JSON, ending with a newline.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Strings and numbers only: this cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Draws a new token for `name`, adds its hash (created at `now`,
    /// seconds since 1970) and returns the token: the only time it is seen.
    pub fn create(&mut self, name: &str, now: u64) -> Result<String> {
        if !valid_name(name) {
            return Err(Error::Config(format!(
                "token name {name:?}: use 1 to 64 of A-Z a-z 0-9 - _ . @"
            )));
        }
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(Error::Config(format!(
                "a token named {name} exists; revoke it first or choose another name"
            )));
        }
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        let token: String = std::iter::once(TOKEN_PREFIX.to_string())
            .chain(b.iter().map(|x| format!("{x:02x}")))
            .collect();
        self.tokens.push(TokenEntry {
            name: name.to_string(),
            sha256: token_hash(&token),
            created: now,
            quota: QuotaOverrides::default(),
        });
        Ok(token)
    }

    /// Removes the token `name`; whether it was there.
    pub fn revoke(&mut self, name: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        self.tokens.len() != before
    }
}

/// Who makes a request: a token's name and its limits, or the anonymous
/// caller of a server without tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    /// What jobs, quotas and logs know the caller by: the token's name and
    /// the first 8 hex digits of its hash (`alice#9f86d081`), so that a
    /// token revoked and created again under the same name for someone
    /// else is another owner and sees none of the old token's jobs.
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
}

/// The name jobs belong to on a server without tokens.
pub(super) const ANONYMOUS: &str = "anonymous";

/// Finds the caller of a request from its `Authorization` header.
#[derive(Debug)]
pub(super) struct Authenticator {
    /// `None`: anonymous, every request is [`ANONYMOUS`]'s.
    by_hash: Option<HashMap<String, Caller>>,
    defaults: Quota,
    anonymous: Quota,
}

impl Authenticator {
    /// Tokens with `defaults` unless overridden; without tokens, the one
    /// anonymous caller has the `anonymous` quota.
    pub(super) fn new(tokens: Option<&TokenFile>, defaults: Quota, anonymous: Quota) -> Self {
        let by_hash = tokens.map(|f| {
            f.tokens
                .iter()
                .map(|t| {
                    let hash = t.sha256.to_ascii_lowercase();
                    let caller = Caller {
                        name: Arc::from(format!("{}#{}", t.name, &hash[..8])),
                        quota: t.quota.apply(defaults),
                    };
                    (hash, caller)
                })
                .collect()
        });
        Authenticator {
            by_hash,
            defaults,
            anonymous,
        }
    }

    /// The same server's authenticator for a new version of its tokens
    /// file (same default and anonymous limits).
    pub(super) fn with_tokens(&self, tokens: &TokenFile) -> Self {
        Self::new(Some(tokens), self.defaults, self.anonymous)
    }

    /// The caller presenting `authorization` (the header's value, if any).
    pub(super) fn caller(&self, authorization: Option<&str>) -> Result<Caller> {
        let Some(by_hash) = &self.by_hash else {
            return Ok(Caller {
                name: Arc::from(ANONYMOUS),
                quota: self.anonymous,
            });
        };
        let Some(value) = authorization else {
            return Err(Error::Unauthorized(
                "this server needs an API token: send `Authorization: Bearer TOKEN` \
                 (he submit --token TOKEN, or HE_TOKEN)"
                    .into(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Error::Unauthorized("the Authorization header is not `Bearer TOKEN`".into())
            })?;
        by_hash
            .get(&token_hash(token))
            .cloned()
            .ok_or_else(|| Error::Unauthorized("the token is unknown or revoked".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_found_by_hash() {
        let mut f = TokenFile::default();
        let t = f.create("alice", 1_764_000_000).unwrap();
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == 3 + 64, "{t}");
        let json = f.to_json();
        assert!(!json.contains(&t[3..]), "the token itself was stored");
        assert!(json.contains(&token_hash(&t)));
        assert!(f.create("alice", 0).is_err(), "a name twice");
        assert!(f.create("bad name", 0).is_err());
        // One hash under two names is refused: which holder would it be?
        let mut twice = f.clone();
        let mut copy = twice.tokens[0].clone();
        copy.name = "mallory".into();
        copy.sha256 = copy.sha256.to_ascii_uppercase();
        twice.tokens.push(copy);
        let err = TokenFile::from_json(&twice.to_json()).unwrap_err();
        assert!(err.to_string().contains("same token hash"), "{err}");
        let back = TokenFile::from_json(&json).unwrap();
        assert_eq!(back, f);
        let auth = Authenticator::new(Some(&back), Quota::default(), Quota::default());
        let alice = auth.caller(Some(&format!("Bearer {t}"))).unwrap().name;
        assert_eq!(&*alice, format!("alice#{}", &token_hash(&t)[..8]));
        for bad in [None, Some("Bearer he_00"), Some(t.as_str())] {
            assert!(
                matches!(auth.caller(bad), Err(Error::Unauthorized(_))),
                "{bad:?}"
            );
        }
        assert!(f.revoke("alice") && !f.revoke("alice"));
        let auth = Authenticator::new(Some(&f), Quota::default(), Quota::default());
        assert!(auth.caller(Some(&format!("Bearer {t}"))).is_err());
        // A new token under the old name is another owner.
        let t2 = f.create("alice", 2).unwrap();
        let auth = Authenticator::new(Some(&f), Quota::default(), Quota::default());
        let alice2 = auth.caller(Some(&format!("Bearer {t2}"))).unwrap().name;
        assert_ne!(
            alice2, alice,
            "a new token named alice owns the old one's jobs"
        );
        // Without tokens, everyone is the anonymous caller.
        let anon = Authenticator::new(None, Quota::default(), Quota::default());
        assert_eq!(&*anon.caller(None).unwrap().name, ANONYMOUS);
    }
}
