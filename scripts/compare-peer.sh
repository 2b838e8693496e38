#!/usr/bin/env bash
# The python-paillier baseline (../shared/peers/phe_mean_filter.py, one
# ciphertext per pixel) and this toolkit, on the same machine in one run.
#
#   scripts/compare-peer.sh [PEER_SIDE] [BITS]     default: 32 2048
#
# The peer runs on a PEER_SIDE x PEER_SIDE grey image (it takes about 20 ms
# per pixel, so 32 is about half a minute); its per-pixel-value times are
# scaled to 512x512 RGB (786,432 values) and set against the blur example
# on the bundled photo resized to 512x512 (RGB, 3x3, same key size).
set -euo pipefail
cd "$(dirname "$0")/.."
side="${1:-32}"
bits="${2:-2048}"
peer="../shared/peers/phe_mean_filter.py"
[ -f "$peer" ] || { echo "compare-peer: $peer not found" >&2; exit 1; }
venv="target/venv-phe"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet phe gmpy2 numpy
fi
echo "== python-paillier, ${side}x${side} grey, 3x3, $bits bits"
line="$("$venv/bin/python" "$peer" "$side" 3 "$bits")"
echo "$line"
ms="$(echo "$line" | awk '{for (i=1;i<=NF;i++) if ($i=="ms/px") s+=$(i-1); print s}')"
echo "== this toolkit: ./dev.sh blur --resize 512x512 --key-bits $bits"
out="$(mktemp -d)"
ours="$(./dev.sh blur --resize 512x512 --key-bits "$bits" -o "$out/b.png" | tee /dev/stderr |
        awk '/encrypt\+filter\+decrypt/ {print $2}')"
python3 - "$ms" "$ours" <<'PY'
import sys
ms, ours = float(sys.argv[1]), float(sys.argv[2])
peer = ms * 786432 / 1000
print(f"512x512 RGB: python-paillier {ms:.2f} ms per value x 786,432 = {peer:,.0f} s; "
      f"this toolkit {ours:.1f} s: {peer / ours:,.0f}x faster")
PY
