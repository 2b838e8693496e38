//! `he keygen`: a key pair into an owner-only file.

use anyhow::Result;
use paillier::Keypair;

use crate::cli::KeygenArgs;
use crate::files;
use crate::ui::{Bar, secs, timed};

/// Runs `he keygen`.
pub(crate) fn run(a: KeygenArgs) -> Result<()> {
    files::check_free(&a.output, a.force)?;
    if let Some(p) = &a.public {
        if std::path::absolute(p).ok() == std::path::absolute(&a.output).ok() {
            anyhow::bail!(
                "--public names the key pair's own file {}: give the public key another name",
                p.display()
            );
        }
        files::check_free(p, a.force)?;
    }
    let spin = Bar::spinner(&format!("generating a {}-bit key", a.key_bits));
    let (kp, t) = timed(|| Keypair::generate(a.key_bits));
    drop(spin);
    let kp = kp?;
    files::save_keypair(&a.output, &kp, a.force)?;
    if let Some(p) = &a.public {
        files::write_atomic(p, &kp.public_key().to_bytes(), a.force, false)?;
        println!("wrote the public key to {}", p.display());
    }
    println!(
        "wrote a {}-bit key pair to {} (owner-only) in {}",
        a.key_bits,
        a.output.display(),
        secs(t)
    );
    Ok(())
}
