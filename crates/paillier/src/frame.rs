//! The one framing of every file and message of the toolkit: key files,
//! encrypted images and job uploads.
//!
//! ```text
//! magic    the format's own bytes (4 to 8 of them)
//! version  u16 LE, the format's version
//! length   u64 LE, bytes of the body
//! body     `length` bytes, the format's content
//! digest   32 bytes, SHA-256 of everything before it
//! ```
//!
//! Nothing may follow the digest. Reading is strict and bounded: the
//! caller gives the largest body it accepts, the length is checked against
//! it and against the bytes at hand before anything is hashed, and the
//! version is checked before the digest, so that a file of another version
//! is named as such rather than reported as corrupted.
//!
//! ```
//! use paillier::frame::{Format, FrameError};
//!
//! const NOTE: Format<4> = Format::new(*b"NOTE", 1, "note");
//! let bytes = NOTE.seal(b"hello");
//! assert_eq!(NOTE.open(&bytes, 1024)?, b"hello");
//! let newer = Format::new(*b"NOTE", 2, "note");
//! assert!(matches!(newer.open(&bytes, 1024), Err(FrameError::Version { found: 1, expected: 2, .. })));
//! # Ok::<(), FrameError>(())
//! ```

/// Bytes of the trailing SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// One framed format: its magic, the version this build writes and reads,
/// and its name for error messages ("key file", "encrypted image").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format<const M: usize> {
    magic: [u8; M],
    version: u16,
    name: &'static str,
}

/// Why framed bytes (or a part of a body) were refused. Every message
/// names the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes do not start with the format's magic.
    #[error("not a {what} of this toolkit (bad magic)")]
    Magic {
        /// The format's name.
        what: &'static str,
    },
    /// A version this build does not read.
    #[error(
        "{what} format version {found} is not supported: this build reads version {expected} only"
    )]
    Version {
        /// The format's name.
        what: &'static str,
        /// The version in the bytes.
        found: u16,
        /// The version this build reads.
        expected: u16,
    },
    /// Fewer bytes than the framing and its declared length need.
    #[error("{what} truncated: {needed} bytes needed, {found} present")]
    Truncated {
        /// The format's name.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// Bytes after the digest.
    #[error("{what}: {extra} bytes follow the digest")]
    Trailing {
        /// The format's name.
        what: &'static str,
        /// How many.
        extra: u64,
    },
    /// A body longer than the caller accepts.
    #[error("{what} body of {length} bytes, at most {limit} allowed")]
    TooLarge {
        /// The format's name.
        what: &'static str,
        /// The body length declared (or the size of the bytes at hand).
        length: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// The digest does not match: the bytes were changed.
    #[error("{what}: digest mismatch, the bytes were corrupted or changed")]
    Digest {
        /// The format's name.
        what: &'static str,
    },
    /// The body ends before a length-prefixed part (or its length).
    #[error("{what} truncated: the {part} needs {needed} bytes, {found} remain")]
    PartTruncated {
        /// The format's name.
        what: &'static str,
        /// The part's name.
        part: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes remaining.
        found: u64,
    },
    /// A length-prefixed part longer than allowed.
    #[error("{what}: the {part} is {length} bytes, at most {limit} allowed")]
    PartTooLarge {
        /// The format's name.
        what: &'static str,
        /// The part's name.
        part: &'static str,
        /// Its declared length.
        length: u64,
        /// The limit.
        limit: u64,
    },
}

impl<const M: usize> Format<M> {
    /// A format with `magic`, writing and reading `version`, named `name`
    /// in error messages.
    #[must_use]
    pub const fn new(magic: [u8; M], version: u16, name: &'static str) -> Self {
        Format {
            magic,
            version,
            name,
        }
    }

    /// The magic bytes.
    #[must_use]
    pub const fn magic(&self) -> &[u8; M] {
        &self.magic
    }

    /// The version this build writes and reads.
    #[must_use]
    pub const fn version(&self) -> u16 {
        self.version
    }

    /// The name used in error messages.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes before the body: magic, version and length.
    #[must_use]
    pub const fn header_len(&self) -> usize {
        M + 2 + 8
    }

    /// Frames `body`: magic, version, length, `body`, digest.
    #[must_use]
    pub fn seal(&self, body: &[u8]) -> Vec<u8> {
        let mut w = self.writer(body.len());
        w.body().extend_from_slice(body);
        w.finish()
    }

    /// A writer whose body is built in place (no copy of a large body);
    /// `capacity` is a hint of the body's size.
    #[must_use]
    pub fn writer(&self, capacity: usize) -> FrameWriter {
        let mut out = Vec::with_capacity(self.header_len() + capacity + DIGEST_LEN);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        FrameWriter {
            out,
            header: self.header_len(),
        }
    }

    /// The body of framed `bytes`, after checking, in this order: the
    /// magic, the version, the declared length against `max_body` and
    /// against the bytes at hand, and the digest.
    pub fn open<'a>(&self, bytes: &'a [u8], max_body: usize) -> Result<&'a [u8], FrameError> {
        let what = self.name;
        let head = self.header_len();
        let truncated = |needed: u64| FrameError::Truncated {
            what,
            needed,
            found: bytes.len() as u64,
        };
        let magic_part = &bytes[..bytes.len().min(M)];
        if magic_part != &self.magic[..magic_part.len()] || bytes.is_empty() {
            return Err(FrameError::Magic { what });
        }
        let Some(version) = bytes.get(M..M + 2) else {
            return Err(truncated(head as u64));
        };
        let found = u16::from_le_bytes([version[0], version[1]]);
        if found != self.version {
            return Err(FrameError::Version {
                what,
                found,
                expected: self.version,
            });
        }
        let Some(length) = bytes.get(M + 2..head) else {
            return Err(truncated(head as u64));
        };
        let mut le = [0u8; 8];
        le.copy_from_slice(length);
        let length = u64::from_le_bytes(le);
        if length > max_body as u64 {
            return Err(FrameError::TooLarge {
                what,
                length,
                limit: max_body as u64,
            });
        }
        let total = head as u128 + u128::from(length) + DIGEST_LEN as u128;
        if (bytes.len() as u128) < total {
            return Err(truncated(u64::try_from(total).unwrap_or(u64::MAX)));
        }
        if bytes.len() as u128 > total {
            return Err(FrameError::Trailing {
                what,
                extra: (bytes.len() as u128 - total) as u64,
            });
        }
        // The body fits in `bytes`, so its end is a valid index.
        let body_end = bytes.len() - DIGEST_LEN;
        if sha256(&bytes[..body_end]) != bytes[body_end..] {
            return Err(FrameError::Digest { what });
        }
        Ok(&bytes[head..body_end])
    }
}

/// A frame being written: push the body into [`body`](Self::body), then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct FrameWriter {
    out: Vec<u8>,
    header: usize,
}

impl FrameWriter {
    /// The body so far, to extend.
    pub fn body(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes the length and the digest: the framed bytes.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let length = (self.out.len() - self.header) as u64;
        self.out[self.header - 8..self.header].copy_from_slice(&length.to_le_bytes());
        let d = sha256(&self.out);
        self.out.extend_from_slice(&d);
        self.out
    }
}

/// Reads length-prefixed parts (u32 LE length, then the bytes) from a body,
/// each bounded: the envelope of a job and the header of an image are
/// made of them.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    rest: &'a [u8],
    what: &'static str,
}

/// Appends `part` with its u32 LE length to `out`. Parts are at most
/// `u32::MAX` bytes; the caller bounds them far below.
pub fn write_part(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&part[..len as usize]);
}

impl<'a> Parts<'a> {
    /// Parts of `body`, of the format named `what`.
    #[must_use]
    pub fn new(body: &'a [u8], what: &'static str) -> Self {
        Parts { rest: body, what }
    }

    /// The next part, named `part` in errors, at most `max` bytes.
    pub fn next(&mut self, part: &'static str, max: usize) -> Result<&'a [u8], FrameError> {
        let what = self.what;
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            return Err(FrameError::PartTruncated {
                what,
                part,
                needed: 4,
                found: self.rest.len() as u64,
            });
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > max {
            return Err(FrameError::PartTooLarge {
                what,
                part,
                length: len as u64,
                limit: max as u64,
            });
        }
        if len > rest.len() {
            return Err(FrameError::PartTruncated {
                what,
                part,
                needed: len as u64,
                found: rest.len() as u64,
            });
        }
        let (p, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(p)
    }

    /// What follows the parts read so far.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Format<4> = Format::new(*b"TEST", 3, "test file");

    fn msg(r: Result<&[u8], FrameError>) -> String {
        match r {
            Ok(b) => panic!("accepted {b:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let sealed = F.seal(b"body");
        assert_eq!(&sealed[..4], b"TEST");
        assert_eq!(&sealed[4..6], &3u16.to_le_bytes());
        assert_eq!(&sealed[6..14], &4u64.to_le_bytes());
        assert_eq!(&sealed[14..18], b"body");
        assert_eq!(sealed[18..], sha256(&sealed[..18]));
        assert_eq!(F.open(&sealed, 4).unwrap(), b"body");
        assert_eq!(F.open(&F.seal(b""), 0).unwrap(), b"");
    }

    #[test]
    fn every_defect_has_its_message() {
        let sealed = F.seal(b"body");
        assert!(msg(F.open(b"", 100)).contains("not a test file of this toolkit (bad magic)"));
        assert!(msg(F.open(b"TESX", 100)).contains("bad magic"));
        assert!(msg(F.open(b"TE", 100)).contains("truncated"));
        let mut old = sealed.clone();
        old[4..6].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            msg(F.open(&old, 100)),
            "test file format version 2 is not supported: this build reads version 3 only"
        );
        assert!(msg(F.open(&sealed, 3)).contains("body of 4 bytes, at most 3 allowed"));
        for cut in 4..sealed.len() {
            assert!(
                msg(F.open(&sealed[..cut], 100)).contains("truncated"),
                "{cut}"
            );
        }
        let mut long = sealed.clone();
        long.push(0);
        assert!(msg(F.open(&long, 100)).contains("1 bytes follow the digest"));
        for i in 14..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(msg(F.open(&bad, 100)).contains("digest mismatch"), "{i}");
        }
        // A huge declared length is refused by the limit, not allocated.
        let mut huge = sealed.clone();
        huge[6..14].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(msg(F.open(&huge, usize::MAX)).contains("truncated"));
        assert!(msg(F.open(&huge, 100)).contains("at most 100 allowed"));
    }

    #[test]
    fn parts_are_bounded() {
        let mut body = Vec::new();
        write_part(&mut body, b"abc");
        write_part(&mut body, b"");
        body.push(9);
        let mut p = Parts::new(&body, "thing");
        assert_eq!(p.next("first", 3).unwrap(), b"abc");
        assert_eq!(p.next("second", 0).unwrap(), b"");
        assert_eq!(p.rest(), &[9]);
        let e = p.next("third", 10).unwrap_err().to_string();
        assert_eq!(e, "thing truncated: the third needs 4 bytes, 1 remain");
        let e = Parts::new(&body, "thing").next("first", 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "thing: the first is 3 bytes, at most 2 allowed"
        );
        let e = Parts::new(&body[..5], "thing")
            .next("first", 9)
            .unwrap_err();
        assert!(e.to_string().contains("needs 3 bytes, 1 remain"));
    }
}
