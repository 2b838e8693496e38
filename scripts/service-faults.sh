#!/usr/bin/env bash
# A server crash in the middle of a job, with the real binaries: start the
# server (`he serve`), start the client (`he submit`) on a job that takes a few
# seconds, kill -9 the server while the job runs, start a new server on the
# same port, and check that the client resubmits by itself, exits 0 (it
# exits non-zero if any decrypted value differs from the plaintext chain)
# and leaves its key file and input untouched. Prints what happened.
#
#   scripts/service-faults.sh [PORT]     (default 18788)
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-18788}"
out="$(mktemp -d)"
# Where cargo puts binaries: CARGO_TARGET_DIR, build.target-dir in a cargo
# config, or ./target; cargo metadata knows which.
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target="${target:-${CARGO_TARGET_DIR:-target}}"
cargo build --release -p he-cli
he="$target/release/he"

server=""
start_server() {
    "$he" serve --listen "127.0.0.1:$port" 2>>"$out/server-$1.log" &
    server=$!
    for _ in $(seq 1 100); do
        kill -0 "$server" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "the server did not start; its log:" >&2
    cat "$out/server-$1.log" >&2
    return 1
}
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# Another program on the port would answer in the server's place.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: pass another as the first argument" >&2
    exit 1
fi
start_server 1
client=(--server "http://127.0.0.1:$port" --key "$out/key.bin" --key-bits 2048 --timeout 300)
cp crates/he-cli/assets/astronaut-256.png "$out/input.png"

# A short job first: generates the key file, which the faulty run reuses.
"$he" submit "$out/input.png" -o "$out/warm-up.png" "${client[@]}" --single-upload --resize 64x64 --filter blur -k 3 >/dev/null
before="$(sha256sum "$out/key.bin" "$out/input.png")"

# About 2.5 s of filtering on this machine's 2 cores (docs/SERVICE.md).
# The single-upload path: a job lost with its server is submitted again
# whole (a tiled job lost so is re-created with the tiles still missing:
# crates/he-service/tests/tiled.rs).
"$he" submit "$out/input.png" -o "$out/edges.png" "${client[@]}" --single-upload \
    --filter gaussian --sigma 1.2 --filter sobel-x --map abs --full-check >"$out/client.out" 2>"$out/client.err" &
client_pid=$!

# The warm-up job was the first accepted and done; wait for the second.
count() { grep -c "$1" "$out/server-1.log" || true; }
for _ in $(seq 1 1200); do
    [ "$(count "job accepted")" -ge 2 ] && break
    sleep 0.05
done
[ "$(count "job accepted")" -ge 2 ] || { echo "the job never reached the server" >&2; exit 1; }
# Paused at once (SIGSTOP), so that the job cannot finish before the kill
# however fast the machine.
kill -STOP "$server"
if [ "$(count "job done")" -ge 2 ]; then
    echo "the job finished before the server was paused" >&2
    exit 1
fi
kill -9 "$server"
wait "$server" 2>/dev/null || true
echo "killed the server (kill -9) with the job running; restarting it on port $port in 1 s"
sleep 1
start_server 2

status=0
wait "$client_pid" || status=$?
echo "--- client stderr:"
cat "$out/client.err"
echo "--- client stdout:"
cat "$out/client.out"
echo "---"
test "$status" -eq 0 || { echo "FAIL: the client exited with $status" >&2; exit 1; }
grep -q "server restarted (instance .* -> .*), job .* lost; resubmitting, attempt 2 of 3" "$out/client.err" \
    || { echo "FAIL: the client did not say that it resubmitted" >&2; exit 1; }
grep -q "spot check .*: all match" "$out/client.out" \
    || { echo "FAIL: no spot check of the result" >&2; exit 1; }
grep -q "plaintext reference .*: 0 of .* values differ" "$out/client.out" \
    || { echo "FAIL: no clean comparison with the plaintext chain" >&2; exit 1; }
grep -q "job done" "$out/server-2.log" || { echo "FAIL: the new server did not filter the job" >&2; exit 1; }
test -s "$out/edges.png"
test "$(sha256sum "$out/key.bin" "$out/input.png")" = "$before" \
    || { echo "FAIL: the key file or the input changed" >&2; exit 1; }
test "$(stat -c %a "$out/key.bin")" = 600
echo "service faults: server killed mid-job and restarted; the client resubmitted, exited 0, the result" \
    "matches the plaintext chain value for value, key file and input unchanged"
