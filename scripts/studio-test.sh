#!/usr/bin/env bash
# The studio in a real browser: builds `he` (release), starts `he serve`
# on loopback with a tokens file and `he studio --server ...` on loopback,
# runs the Playwright tests (studio-tests/, playwright-core driving
# Debian's /usr/bin/chromium headless, nothing downloaded), and stops
# everything at the end. Screenshots go to the temporary work directory
# (deleted at the end), so that a run leaves the checkout unmodified;
# STUDIO_SHOTS=DIR writes them to DIR instead (relative to the checkout):
#
#   scripts/studio-test.sh [SERVE_PORT [STUDIO_PORT]]   (default 18791 18792)
#   STUDIO_SHOTS=docs/images scripts/studio-test.sh     (refresh the docs' screenshots)
#
# Needs /usr/bin/chromium (apt-get install -y chromium) and node; runs
# `npm ci` in studio-tests/ if its node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
serve_port="${1:-18791}"
studio_port="${2:-18792}"
work="$(mktemp -d)"
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target="${target:-${CARGO_TARGET_DIR:-target}}"
cargo build --release -p he-cli
he="$target/release/he"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 30 s) until process $2 listens on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 300); do
        kill -0 "$2" 2>/dev/null || { echo "the process meant for port $1 ended" >&2; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 30 s" >&2
    return 1
}
# Another program on a port would answer in the server's place.
for p in "$serve_port" "$studio_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use: pass others as the arguments" >&2
        exit 1
    fi
done

token="$("$he" token create studio-test --tokens "$work/tokens.json" | grep -o 'he_[0-9a-f]*' | head -n 1)"
"$he" serve --listen "127.0.0.1:$serve_port" --tokens "$work/tokens.json" 2>"$work/serve.log" &
pids+=($!)
wait_port "$serve_port" "$!" || { cat "$work/serve.log" >&2; exit 1; }

HE_TOKEN="$token" "$he" studio --listen "127.0.0.1:$studio_port" \
    --server "http://127.0.0.1:$serve_port" >"$work/studio.out" 2>"$work/studio.log" &
pids+=($!)
wait_port "$studio_port" "$!" || { cat "$work/studio.log" >&2; exit 1; }
studio_url="$(grep -o 'http://127\.0\.0\.1:[0-9]*/?token=[0-9a-f]*' "$work/studio.out" | head -n 1)"
test -n "$studio_url" || { echo "he studio printed no address" >&2; cat "$work/studio.out" "$work/studio.log" >&2; exit 1; }

if [ ! -d studio-tests/node_modules ]; then
    (cd studio-tests && npm ci --no-audit --no-fund)
fi
shots="${STUDIO_SHOTS:-$work/shots}"
case "$shots" in /*) ;; *) shots="$root/$shots" ;; esac
mkdir -p "$shots"
status=0
STUDIO_URL="$studio_url" HE_BIN="$he" PHOTO="$root/crates/he-cli/assets/astronaut-256.png" \
    TOKEN="$token" WORK_DIR="$work" SHOTS_DIR="$shots" \
    node --test --test-concurrency=1 studio-tests/studio.test.mjs || status=$?
if [ "$status" != 0 ]; then
    echo "--- he studio log" >&2; cat "$work/studio.log" >&2 || true
    echo "--- he serve log (last 30 lines)" >&2; tail -n 30 "$work/serve.log" >&2 || true
    exit "$status"
fi
if [ -n "${STUDIO_SHOTS:-}" ]; then
    echo "studio browser tests: passed (screenshots in $shots)"
else
    echo "studio browser tests: passed (screenshots not kept; STUDIO_SHOTS=DIR keeps them)"
fi
