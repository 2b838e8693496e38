//! The systemd unit in deploy/: hardened, stopping within its drain, its
//! command line one that `he serve` takes, and accepted by
//! `systemd-analyze verify` where that tool is installed.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/he-serve.service");
    std::fs::read_to_string(p).unwrap()
}

/// The values of `key=` in the unit, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_unit_is_hardened_and_outlasts_the_drain() {
    let u = unit();
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("StateDirectory", "he-serve"),
        ("ReadWritePaths", "/var/lib/he-serve"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(values(&u, key), [want], "{key}");
    }
    let nofile: u64 = values(&u, "LimitNOFILE")[0].parse().unwrap();
    assert!(nofile >= 4096, "LimitNOFILE={nofile}");
    // SIGKILL only after the drain (30 s) and the close grace (10 s).
    let stop: u64 = values(&u, "TimeoutStopSec")[0].parse().unwrap();
    assert!(stop > 30 + 10, "TimeoutStopSec={stop}");
}

#[test]
fn the_units_command_line_is_one_he_serve_takes() {
    let u = unit();
    let exec = u
        .split("ExecStart=")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('\\').trim())
        .take_while(|l| !l.is_empty() && !l.contains('='))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[..2], ["/usr/local/bin/he", "serve"], "{exec}");
    assert!(
        exec.contains("--config /etc/he-serve/he-serve.toml"),
        "{exec}"
    );
    // Every flag exists (clap refuses unknown ones with exit code 2);
    // --help stops before anything is read.
    let flags: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| w.starts_with("--"))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_he"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for f in flags {
        assert!(help.contains(&format!("{f} ")), "he serve has no {f}");
    }
    // Each credential it names is loaded.
    for cred in ["tokens.json", "metrics-token"] {
        assert!(exec.contains(&format!("${{CREDENTIALS_DIRECTORY}}/{cred}")));
        assert!(
            values(&u, "LoadCredential")
                .iter()
                .any(|v| v.starts_with(&format!("{cred}:"))),
            "{cred}"
        );
    }
}

#[test]
fn systemd_analyze_verifies_the_unit_where_it_is_installed() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    assert!(probe.status.success());
    let dir = std::env::temp_dir().join(format!("he-cli-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("he-serve.service");
    std::fs::write(
        &path,
        unit().replace("/usr/local/bin/he", env!("CARGO_BIN_EXE_he")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "systemd-analyze verify: {err}");
    assert!(!err.contains("he-serve.service:"), "{err}");
}
