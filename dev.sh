#!/usr/bin/env bash
# The README's commands. Installs what the build needs on a fresh machine
# (GMP's build needs m4; see scripts/bootstrap.sh), then runs cargo.
#
#   ./dev.sh blur [ARGS...]   `he blur`: the bundled photo blurred end to end (release build)
#   ./dev.sh test [ARGS...]   the whole test suite (unit, property, integration, doc tests)
#   ./dev.sh bench [ARGS...]  the criterion benches
#   ./dev.sh he ARGS...       any `he` command from this checkout (release build)
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    blur) exec cargo run --quiet --release -p he-cli -- blur "$@" ;;
    he) exec cargo run --quiet --release -p he-cli -- "$@" ;;
    test) exec cargo test --workspace "$@" ;;
    bench) exec cargo bench "$@" ;;
    *)
        echo "usage: ./dev.sh blur [ARGS...] | test [ARGS...] | bench [ARGS...] | he ARGS..." >&2
        exit 2
        ;;
esac
