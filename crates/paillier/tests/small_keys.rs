//! Small keys need a call by name, not only the `insecure-test-keys`
//! feature (which this test binary has, as every binary `cargo test
//! --workspace` builds has): a process that never asked for them refuses
//! them everywhere, and `Keypair::generate` refuses them always.
//!
//! The opt-in is process-wide and cannot be undone, so the part that must
//! not have opted in runs in a child process: this same test binary,
//! started again with the key files in its environment.
#![allow(clippy::unwrap_used)] // a panic is a test failure

use std::process::Command;

use paillier::{Integer, Keypair, PrivateKey, PublicKey};

const CHILD: &str = "PAILLIER_SMALL_KEYS_CHILD";
const TEST: &str = "small_keys_load_only_after_a_call_by_name";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn refused<T: std::fmt::Debug>(r: paillier::Result<T>, what: &str) {
    let e = r.expect_err(what).to_string();
    assert!(e.contains("2048"), "{what}: {e}");
}

/// The primes of the 256-bit known-answer key (`data/kat.txt`).
fn kat_primes() -> (Integer, Integer) {
    let text = include_str!("data/kat.txt");
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| Integer::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    (get("p "), get("q "))
}

/// What the child checks: nothing small loads before the opt-in,
/// everything after it; `generate` refuses small sizes throughout.
fn child(files: &str) {
    let (pk_file, kp_file) = files.split_once(',').unwrap();
    let (pk_file, kp_file) = (unhex(pk_file), unhex(kp_file));
    let (p, q) = kat_primes();
    let n = Integer::from(&p * &q);
    assert!(!paillier::insecure_test_keys::allowed_in_this_process());
    refused(Keypair::generate(512), "generate(512)");
    refused(Keypair::generate(1024), "generate(1024)");
    refused(PublicKey::from_bytes(&pk_file), "PublicKey::from_bytes");
    refused(Keypair::from_bytes(&kp_file), "Keypair::from_bytes");
    refused(
        PublicKey::from_modulus(n.clone()),
        "PublicKey::from_modulus",
    );
    refused(
        PrivateKey::from_primes(p.clone(), q.clone()),
        "PrivateKey::from_primes",
    );

    paillier::insecure_test_keys::allow_in_this_process();
    let pk = PublicKey::from_bytes(&pk_file).unwrap();
    let kp = Keypair::from_bytes(&kp_file).unwrap();
    assert_eq!(kp.public_key(), &pk);
    PublicKey::from_modulus(n).unwrap();
    PrivateKey::from_primes(p, q).unwrap();
    refused(Keypair::generate(512), "generate(512) after the opt-in");
}

#[test]
fn small_keys_load_only_after_a_call_by_name() {
    if let Ok(files) = std::env::var(CHILD) {
        child(&files);
        return;
    }
    // Generating a test key opts this process in.
    refused(Keypair::generate(512), "generate(512) before any opt-in");
    let kp = Keypair::generate_insecure_for_tests(512).unwrap();
    assert!(paillier::insecure_test_keys::allowed_in_this_process());
    assert!(PublicKey::from_bytes(&kp.public_key().to_bytes()).is_ok());
    refused(Keypair::generate(512), "generate(512) after a test key");
    let files = format!(
        "{},{}",
        hex(&kp.public_key().to_bytes()),
        hex(&kp.to_bytes())
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}
