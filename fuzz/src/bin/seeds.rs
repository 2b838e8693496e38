//! Writes seed inputs for every fuzz target into `DIR/<target>/`: valid
//! objects for the fixed key, so that mutations start deep in the format.

use std::path::Path;

use enc_image::Rational;
use he_filter::Filter;
use paillier::{Keypair, PublicKey};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    let dir = Path::new(&dir);
    let kp = he_toolkit_fuzz::keypair();
    let pk = kp.public_key();

    // Key files: mode 0 is the raw file, mode 1 the body to be sealed.
    let pk_file = pk.to_bytes();
    let kp_file = kp.to_bytes();
    write(dir, "public_key", "raw", &[&[0u8][..], &pk_file].concat())?;
    write(
        dir,
        "public_key",
        "body",
        &[
            &[1u8][..],
            &he_toolkit_fuzz::body(&PublicKey::FILE_FORMAT, &pk_file),
        ]
        .concat(),
    )?;
    write(dir, "keypair", "raw", &[&[0u8][..], &kp_file].concat())?;
    write(
        dir,
        "keypair",
        "body",
        &[
            &[1u8][..],
            &he_toolkit_fuzz::body(&Keypair::FILE_FORMAT, &kp_file),
        ]
        .concat(),
    )?;

    let c = pk
        .encrypt(&paillier::Integer::from(12345))
        .expect("encrypt");
    let mut cbytes = Vec::new();
    pk.write_ciphertext(&c, &mut cbytes);
    write(dir, "ciphertext", "one", &cbytes)?;

    for (i, chain) in [
        vec![Filter::Mean { k: 3 }],
        vec![Filter::SobelX, Filter::Invert],
    ]
    .iter()
    .enumerate()
    {
        let (_, enc) = he_toolkit_fuzz::sample_image(chain);
        let bytes = enc.to_bytes();
        write(
            dir,
            "encrypted_image",
            &format!("raw{i}"),
            &[&[0u8][..], &bytes].concat(),
        )?;
        write(
            dir,
            "encrypted_image",
            &format!("body{i}"),
            &[
                &[1u8][..],
                &he_toolkit_fuzz::body(&enc_image::FORMAT, &bytes),
            ]
            .concat(),
        )?;
    }

    write(dir, "kernel_text", "sharpen", b"0 -1 0\n-1 5 -1\n0 -1 0\n")?;
    write(
        dir,
        "kernel_text",
        "blur",
        b"# binomial\n1 2 1\n2 4 2\n1 2 1\ndivisor 16\n",
    )?;

    let chains = [
        Filter::every_builtin()
            .into_iter()
            .map(|f| vec![f])
            .collect::<Vec<_>>(),
        vec![
            vec![Filter::Mean { k: 3 }, Filter::Sharpen],
            vec![Filter::Grey, Filter::SobelY, Filter::Invert],
            vec![Filter::Unsharp {
                k: 3,
                amount: Rational::new(3, 2).expect("ratio"),
            }],
        ],
    ]
    .concat();
    for (i, chain) in chains.iter().enumerate() {
        let json = serde_json::to_vec(chain).expect("json");
        write(dir, "filter_chain", &format!("chain{i:02}"), &json)?;
    }
    // Server requests: envelopes around a valid key and image (mode 0 raw,
    // mode 1 without the envelope digest, which the target appends).
    for (i, chain) in chains.iter().take(6).enumerate() {
        let (_, enc) = he_toolkit_fuzz::sample_image(chain);
        let spec = he_service::wire::JobSpec {
            filters: chain.clone(),
        };
        let env = he_service::wire::Envelope::encode(&spec, &pk.to_bytes(), &enc.to_bytes());
        write(
            dir,
            "envelope",
            &format!("raw{i}"),
            &[&[0u8][..], &env].concat(),
        )?;
        let unsealed = he_toolkit_fuzz::body(&he_service::wire::ENVELOPE_FORMAT, &env);
        write(
            dir,
            "envelope",
            &format!("body{i}"),
            &[&[1u8][..], &unsealed[..]].concat(),
        )?;
    }
    println!("seeds written to {}", dir.display());
    Ok(())
}
