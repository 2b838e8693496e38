//! `he token create|list|revoke`: the API tokens file of `he serve
//! --tokens FILE`. The file holds names, SHA-256 hashes, creation times
//! and quota overrides, never a token; a new token is printed once, on
//! standard output. The file is rewritten atomically and owner-only.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use he_service::server::tokens::TokenFile;

use crate::cli::TokenCommand;
use crate::files;

/// Largest tokens file read.
const MAX_TOKENS_FILE: u64 = 64 << 20;

/// The tokens file at `path`, or an empty one if there is none yet.
fn load(path: &Path) -> Result<TokenFile> {
    if path.symlink_metadata().is_err() {
        return Ok(TokenFile::default());
    }
    let text = files::read_text(path, MAX_TOKENS_FILE, "tokens file")?;
    Ok(TokenFile::from_json(&text)?)
}

fn save(path: &Path, file: &TokenFile) -> Result<()> {
    files::write_atomic(path, file.to_json().as_bytes(), true, true)
        .with_context(|| format!("cannot write the tokens file {}", path.display()))
}

/// `secs` since 1970 as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date:
/// Howard Hinnant's algorithm).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Runs `he token ...`.
pub(crate) fn run(c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create(a) => {
            let path = &a.file.tokens;
            let mut file = load(path)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let token = file.create(&a.name, now)?;
            save(path, &file)?;
            eprintln!(
                "token {} added to {} (only its hash is stored; it is shown once, below)",
                a.name,
                path.display()
            );
            println!("{token}");
        }
        TokenCommand::List(a) => {
            let file = load(&a.tokens)?;
            if file.tokens.is_empty() {
                eprintln!("no tokens in {}", a.tokens.display());
            }
            for t in &file.tokens {
                let quota = if t.quota.is_empty() {
                    String::new()
                } else {
                    format!("  quota {}", serde_json::to_string(&t.quota)?)
                };
                println!("{:<24} created {}{quota}", t.name, utc(t.created));
            }
        }
        TokenCommand::Revoke(a) => {
            let path = &a.file.tokens;
            let mut file = load(path)?;
            if !file.revoke(&a.name) {
                bail!("no token named {} in {}", a.name, path.display());
            }
            save(path, &file)?;
            eprintln!(
                "token {} revoked in {}; a running server reads the file when it starts: restart it",
                a.name,
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_158_400), "2025-11-26 12:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
