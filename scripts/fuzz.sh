#!/usr/bin/env bash
# Fuzz everything that crosses the wire or comes from a file, each target
# for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 30 s for every target
#
# Targets (fuzz/fuzz_targets/): public_key, keypair, ciphertext,
# encrypted_image, kernel_text, filter_chain, envelope. A long run:
#   scripts/fuzz.sh 3600 encrypted_image
#
# Uses cargo-fuzz and libFuzzer (installed here if missing). cargo-fuzz
# passes unstable compiler flags; RUSTC_BOOTSTRAP=1 lets this machine's
# stable toolchain accept them (no nightly toolchain can be fetched here).
# Sanitizer: none (the code under test denies unsafe code but for one
# reviewed function); libFuzzer still catches panics, aborts, timeouts and
# memory blow-ups. Seeds are valid objects made by fuzz/src/bin/seeds.rs;
# the corpus grows in fuzz/corpus/ (not committed). A crash leaves its
# input in fuzz/artifacts/TARGET/ and makes this script fail: turn it into
# a regression test, then fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(public_key keypair ciphertext encrypted_image kernel_text filter_chain envelope)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz --version 0.13.2 >&2
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
cargo run --release --quiet --bin seeds -- seeds >/dev/null
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== fuzz $t for ${secs}s"
    log="$(mktemp)"
    status=0
    cargo fuzz run --sanitizer none --release "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $t failed (exit $status); inputs that crash are in fuzz/artifacts/$t" >&2
        exit 1
    fi
    rm -f "$log"
done
