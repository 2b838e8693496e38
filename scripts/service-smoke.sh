#!/usr/bin/env bash
# The service end to end with the real binaries, as docs/SERVICE.md says to
# run them: start `he serve` on loopback, run `he submit`
# against it (a blur, then a chain with a key file), check that both exit
# 0 (the client exits non-zero if any decrypted value differs from the
# plaintext filter), and stop the server.
#
#   scripts/service-smoke.sh [PORT]     (default 18787)
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-18787}"
out="$(mktemp -d)"
# Where cargo puts binaries: CARGO_TARGET_DIR, build.target-dir in a cargo
# config, or ./target; cargo metadata knows which.
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target="${target:-${CARGO_TARGET_DIR:-target}}"
cargo build --release -p he-cli
he="$target/release/he"

# Another program on the port would answer in the server's place.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: pass another as the first argument" >&2
    exit 1
fi
"$he" serve --listen "127.0.0.1:$port" 2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

started=0
for _ in $(seq 1 100); do
    kill -0 "$server" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then started=1; break; fi
    sleep 0.1
done
if [ "$started" = 0 ]; then
    echo "the server did not start; its log:" >&2
    cat "$out/server.log" >&2
    exit 1
fi

client=("$he" submit --server "http://127.0.0.1:$port" --resize 128x128 --key-bits 2048)
"${client[@]}" -o "$out/blurred.png" --filter blur -k 3
"${client[@]}" -o "$out/edges.png" --key "$out/key.bin" --filter gaussian --sigma 1 --filter sobel-x --map abs
test -s "$out/blurred.png" && test -s "$out/edges.png"
test "$(stat -c %a "$out/key.bin")" = 600
# The key file is reused, never overwritten.
"${client[@]}" -o "$out/sharp.png" --key "$out/key.bin" --filter sharpen
grep -q "job done" "$out/server.log"
echo "service smoke test: 3 jobs filtered, decrypted and checked"
