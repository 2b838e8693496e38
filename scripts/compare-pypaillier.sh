#!/usr/bin/env bash
# Public-key encryption, this toolkit against pypaillier (Rust + GMP,
# Damgard-Jurik-Nielsen short exponents), in one run, alternating, on all
# cores: encryptions per second of
#   ours textbook (r^n), ours short exponent (default, 2k-bit exponents),
#   ours short exponent with |n|/2-bit exponents (pypaillier's length),
#   pypaillier encrypt_integers under the SAME n (PublicKey.from_n),
# at 2048 and 3072 bits; then a 4000-pixel-wide RGB photo (ROWS rows)
# encrypted with the public key alone (short exponent) and by the key holder.
#
#   scripts/compare-pypaillier.sh [SECONDS] [ROUNDS] [ROWS]   default: 4 2 3000
#
# pypaillier is installed from PyPI into a venv under the cargo target dir on
# first use. If it cannot be installed, python-paillier (`phe`, the peer in
# ../shared/peers) is measured instead and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-4}"
rounds="${2:-2}"
rows="${3:-3000}"
target="${CARGO_TARGET_DIR:-target}"
venv="$target/venv-pypaillier"
peer=pypaillier
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import paillier' 2>/dev/null; then
    python3 -m venv "$venv"
    if ! "$venv/bin/pip" install --quiet pypaillier; then
        echo "compare-pypaillier: pypaillier does not install here; measuring python-paillier (phe)" >&2
        "$venv/bin/pip" install --quiet phe gmpy2
        peer=phe
    fi
fi
"$venv/bin/python" -c 'import paillier' 2>/dev/null || peer=phe
ver="$("$venv/bin/pip" show "$([ $peer = pypaillier ] && echo pypaillier || echo phe)" | awk '/^Version/ {print $2}')"

cargo build --release --quiet --example pk_encrypt_rate
bin="$target/release/examples/pk_encrypt_rate"
keys="$target/pk-rate-keys"
mkdir -p "$keys"
chmod 700 "$keys"

peer_rate() { # BITS: encryptions per second of the peer under our n, all cores
    local n
    n="$("$bin" modulus "$1" - - "$keys/kp-$1.bin")"
    "$venv/bin/python" - "$n" "$secs" "$peer" <<'PY'
import sys, time
n, secs, peer = int(sys.argv[1], 16), float(sys.argv[2]), sys.argv[3]
vals = [i * 7919 for i in range(256)]
if peer == "pypaillier":
    import paillier
    pub = paillier.PublicKey.from_n(n.to_bytes((n.bit_length() + 7) // 8, "big"))
    run = lambda: paillier.encrypt_integers(pub, vals)  # all cores
else:  # python-paillier: one core, so run it in two processes
    from concurrent.futures import ProcessPoolExecutor
    import phe
    pub = phe.PaillierPublicKey(n)
    pool = ProcessPoolExecutor(2)
    run = lambda: list(pool.map(pub.raw_encrypt, vals, chunksize=16))
run()
t, ops = time.perf_counter(), 0
while time.perf_counter() - t < secs:
    ops += len(run())
print(f"{ops / (time.perf_counter() - t):.1f}")
PY
}

field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }

declare -A best
note() { # KEY VALUE: keep every value, printed as min-max
    best[$1]="${best[$1]:-} $2"
}
for bits in 2048 3072; do
    "$bin" modulus "$bits" - - "$keys/kp-$bits.bin" >/dev/null # make the key once
    for r in $(seq "$rounds"); do
        for mode in textbook short half peer; do
            if [ "$mode" = peer ]; then
                v="$(peer_rate "$bits")"
            else
                v="$("$bin" rate "$bits" "$mode" "$secs" "$keys/kp-$bits.bin" | field per_s)"
            fi
            echo "round $r, $bits bits, $mode: $v/s" >&2
            note "$mode-$bits" "$v"
        done
    done
done

span() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }
echo
echo "public-key encryptions per second, all cores ($(nproc) here), $rounds alternating rounds of ${secs}s:"
printf '| %-52s | %-15s | %-15s |\n' "" "2048 bits" "3072 bits"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..17})" "$(printf -- '-%.0s' {1..17})"
for mode in textbook short half peer; do
    case $mode in
        textbook) label="this toolkit, textbook (r^n)";;
        short) label="this toolkit, short exponent (224/256-bit, default)";;
        half) label="this toolkit, short exponent (|n|/2-bit)";;
        peer) label="$peer $ver, public encryption";;
    esac
    printf '| %-52s | %-15s | %-15s |\n' "$label" "$(span "${best[$mode-2048]}")" "$(span "${best[$mode-3072]}")"
done

echo
echo "4000x${rows} RGB photo, 2048 bits, packed for 5x5 means, alternating:"
for r in $(seq "$rounds"); do
    for mode in short holder; do
        line="$("$bin" photo 2048 "$mode" "$rows" "$keys/kp-2048.bin")"
        echo "round $r: $line" >&2
        note "photo-$mode" "$(echo "$line" | field secs)"
        note "setup-$mode" "$(echo "$line" | field setup_s)"
    done
done
python3 - "${best[photo-short]}" "${best[photo-holder]}" "${best[setup-short]}" "${best[setup-holder]}" "$rows" <<'PY'
import sys
short, holder, setup_s, setup_h = ([float(x) for x in a.split()] for a in sys.argv[1:5])
rows = int(sys.argv[5])
# Each channel has rows + 2 * halo ciphertext rows (halo 2 for 5x5 means).
scale = (3000 + 4) / (rows + 4)
note = "" if rows == 3000 else f"; encryption of a band of {rows} rows scaled by {scale:.3f} to 3000 rows"
# The table is built once per key: it is added once, not scaled.
full_s = [e * scale + s for e, s in zip(short, setup_s)]
full_h = [e * scale + s for e, s in zip(holder, setup_h)]
for name, xs in (("public key, short exponent", full_s), ("key holder", full_h)):
    print(f"  {name}: {min(xs):.1f}-{max(xs):.1f} s (tables included{note})")
ratios = sorted(s / h for s, h in zip(full_s, full_h))
print(f"  ratio short exponent / key holder, per round: {ratios[0]:.2f}-{ratios[-1]:.2f}")
PY
