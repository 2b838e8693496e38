//! Support for the service examples (`client`, `server`, `loadtest`):
//! key files written
//! with owner-only permissions and loaded with checks, and output files
//! that are never overwritten without a flag.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use paillier::Keypair;

/// Writes `bytes` to `path`. Refuses an existing file unless `force`; a
/// `secret` file is created with owner-only permissions (0600 on Unix),
/// and made so if it existed.
pub fn write_file(path: &Path, bytes: &[u8], force: bool, secret: bool) -> Result<(), String> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists; choose another path or pass --force to overwrite it",
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Key files are a few KiB; larger files are refused before reading.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Loads a key pair written by [`save_keypair`]: refuses a file that
/// others can read (on Unix) unless `allow_readable`, or that is too
/// large, then checks the key in full (format, digest, primes, consistency
/// with n).
pub fn load_keypair(path: &Path, allow_readable: bool) -> Result<Keypair, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !allow_readable {
            return Err(format!(
                "{} holds a private key but is readable by others (mode {mode:o}); \
                 run chmod 600 {} if it is yours (or pass --allow-readable-key)",
                path.display(),
                path.display()
            ));
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "{} is {} bytes, not a key file (at most {MAX_KEY_FILE})",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Keypair::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Saves a key pair with owner-only permissions; refuses to replace an
/// existing file unless `force`.
pub fn save_keypair(path: &Path, kp: &Keypair, force: bool) -> Result<(), String> {
    write_file(path, &kp.to_bytes(), force, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_not_overwritten_and_secrets_are_private() {
        let dir = std::env::temp_dir().join(format!("he-toolkit-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.bin");
        let _ = std::fs::remove_file(&p);
        write_file(&p, b"one", false, true).unwrap();
        let e = write_file(&p, b"two", false, true).unwrap_err();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_file(&p, b"two", true, true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_keypair(&p, false).unwrap_err();
            assert!(e.contains("readable by others"), "{e}");
            // Forced: the permissions pass, and the content is still checked.
            let e = load_keypair(&p, true).unwrap_err();
            assert!(!e.contains("readable by others"), "{e}");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Not a key: refused by the checked loader.
        assert!(load_keypair(&p, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
