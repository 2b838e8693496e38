#!/usr/bin/env bash
# Phone photos through `he`, measured against the targets of issue #11, on
# this machine; prints a table (wall, CPU, peak RSS of client and server,
# ratios against the targets) and exits non-zero if any result is not exact
# or a resume did not resume.
#
#   scripts/phone-targets.sh [--small] [--runs N] [--parts LIST] [--paths LIST] [--port P] [--keep DIR]
#
# Full size (hours on this 2-core VM: run it on an otherwise idle machine,
# outside CI; --parts runs some of it, e.g. --parts 48,3072):
#   - 512 (part `512`): 512x512 RGB, 2048 bits, `he blur` tiled and untiled
#     and `he submit` through `he serve`, N runs each, alternated, medians;
#   - 12 MP (part `12`) (4000x3000 RGB, 3x3 mean, 2048-bit key): `he blur` tiled (the
#     default) and untiled (`--untiled`) in one process, and `he serve`
#     (default settings, loopback) with `he submit`; N runs each (default 3),
#     alternated, medians;
#   - 12 MP killed (kill -9 of the client) at about 50% and run again, which
#     resumes (part `resume`): the two runs' client CPU against the mean of
#     the uninterrupted runs made right before and right after them (the
#     machine's speed drifts within minutes), in process (path `tiled`) and
#     through the service (path `service`);
#   - 48 MP (8000x6000) tiled in process and through the service, once
#     (part `48`);
#   - 12 MP with a 3072-bit key through the service, once (part `3072`).
# --paths tiled,untiled,service (the default: all three) runs only those
# ways in parts 512, 12, resume and 48 (without `service`, part 3072 runs
# in process only), e.g. `--parts 12,48 --paths service --runs 1` for the
# 48 MP / 12 MP ratio through the service in about 45 minutes.
# --small (CI, a few minutes): parts 512, 12 (at 1000x750, tiles of 50
# rows) and resume, one run each, interrupted and resumed once in process
# and once through the service.
#
# The photo is the bundled one resized (examples/phone_photo.rs); times and
# peak RSS come from /usr/bin/time (GNU time); every client run checks its
# result (`he blur` every value, `he submit --full-check` every value and
# the spot checks) and the script compares every output byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."

small=0 runs="" parts="" paths="tiled,untiled,service" port=18797 keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --small) small=1 ;;
        --runs) runs="$2"; shift ;;
        --parts) parts="$2"; shift ;;
        --paths) paths="$2"; shift ;;
        --port) port="$2"; shift ;;
        --keep) keep="$2"; shift ;;
        *) echo "usage: $0 [--small] [--runs N] [--parts LIST] [--paths LIST] [--port P] [--keep DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [ "$small" = 1 ]; then
    size=1000x750 runs="${runs:-1}" tiles=(--tile-rows 50) parts="${parts:-512,12,resume}"
else
    size=4000x3000 runs="${runs:-3}" tiles=() parts="${parts:-512,12,resume,48,3072}"
fi
for p in ${parts//,/ }; do
    case "$p" in
        512 | 12 | resume | 48 | 3072) ;;
        *) echo "unknown part '$p': the parts are 512, 12, resume, 48 and 3072" >&2; exit 2 ;;
    esac
done
for p in ${paths//,/ }; do
    case "$p" in
        tiled | untiled | service) ;;
        *) echo "unknown path '$p': the paths are tiled, untiled and service" >&2; exit 2 ;;
    esac
done
want() { [[ ",$parts," == *",$1,"* ]]; }
way() { [[ ",$paths," == *",$1,"* ]]; }
if [ ! -x /usr/bin/time ]; then
    echo "GNU time (/usr/bin/time) is needed for CPU and peak RSS" >&2
    exit 1
fi

target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target="${target:-${CARGO_TARGET_DIR:-target}}"
cargo build --quiet --release -p he-cli
cargo build --quiet --release --example phone_photo
he="$target/release/he"
if [ -n "$keep" ]; then
    out="$keep"
    mkdir -p "$out"
else
    out="$(mktemp -d)"
fi
server_tpid=""
cleanup() {
    stop_server || true
    [ -n "$keep" ] || rm -rf "$out"
}
trap cleanup EXIT

# The last line of a /usr/bin/time -o file: wall user system peak-KiB
# (a killed command's file starts with a "terminated by signal" line).
times() { tail -n 1 "$out/$1.time"; }
wall() { times "$1" | awk '{print $1}'; }
cpu() { times "$1" | awk '{printf "%.2f", $2 + $3}'; }
rss() { times "$1" | awk '{printf "%.0f", $4 / 1024}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
max() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }

# measure NAME CMD...: runs CMD under GNU time; stops the script if it fails.
measure() {
    local name="$1"
    shift
    if ! /usr/bin/time -f '%e %U %S %M' -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err"; then
        echo "$name failed:" >&2
        cat "$out/$name.out" "$out/$name.err" >&2
        exit 1
    fi
}

# start_server NAME: `he serve` with its default settings on loopback,
# under GNU time (its peak RSS is read when it stops).
start_server() {
    /usr/bin/time -f '%e %U %S %M' -o "$out/$1.time" \
        "$he" serve --listen "127.0.0.1:$port" 2>"$out/$1.err" &
    server_tpid=$!
    for _ in $(seq 1 100); do
        kill -0 "$server_tpid" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "he serve did not start; its log:" >&2
    cat "$out/$1.err" >&2
    exit 1
}
stop_server() {
    [ -n "$server_tpid" ] || return 0
    local pid
    pid="$(pgrep -P "$server_tpid" || true)"
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    wait "$server_tpid" 2>/dev/null || true
    server_tpid=""
}

# interrupted NAME CMD...: starts CMD under GNU time, kills it (SIGKILL)
# once its progress says 50% or more of the tiles are done, then runs it
# again, which must resume.
interrupted() {
    local name="$1" tpid pid
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$out/$name-killed.time" "$@" \
        >"$out/$name-killed.out" 2>"$out/$name-killed.err" &
    tpid=$!
    until grep -qE 'progress: [0-9]+/[0-9]+ tiles \(([5-9][0-9]|100)%\)' "$out/$name-killed.err"; do
        if ! kill -0 "$tpid" 2>/dev/null; then
            echo "$name ended before it was killed:" >&2
            cat "$out/$name-killed.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    pid="$(pgrep -P "$tpid")"
    kill -9 "$pid"
    wait "$tpid" 2>/dev/null || true
    measure "$name-resumed" "$@"
    if ! grep -q "resuming: " "$out/$name-resumed.out"; then
        echo "$name: the second run did not resume:" >&2
        cat "$out/$name-resumed.out" >&2
        exit 1
    fi
}

same() {
    if ! cmp -s "$1" "$2"; then
        echo "$1 and $2 differ: a result is not exact" >&2
        exit 1
    fi
}

# Another program on the port would answer in the server's place.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: pick another with --port" >&2
    exit 1
fi
echo "== photos and keys in $out"
rm -f "$out"/*.first
"$target/release/examples/phone_photo" "$size" "$out/photo.png" >/dev/null
"$he" keygen -o "$out/key2048" --key-bits 2048 >/dev/null
has_service=0
if way service && "$he" submit --help | grep -q -- '--tile-rows'; then has_service=1; fi
# same_as_first NAME FILE: FILE must equal the first output of group NAME.
same_as_first() {
    if [ -f "$out/$1.first" ]; then
        same "$(cat "$out/$1.first")" "$2"
    else
        echo "$2" >"$out/$1.first"
    fi
}
blur=("$he" blur "$out/photo.png" --key "$out/key2048" "${tiles[@]}")
submit=("$he" submit "$out/photo.png" --server "http://127.0.0.1:$port" --key "$out/key2048" --full-check "${tiles[@]}")

if want 512; then
    echo "== 512x512, 2048 bits: $paths, $runs run(s) each, alternated"
    p512=("$he" blur --resize 512x512 --key "$out/key2048")
    [ $has_service = 1 ] && start_server server-512
    for i in $(seq 1 "$runs"); do
        if way tiled; then
            measure "p512-tiled-$i" "${p512[@]}" -o "$out/p512-tiled-$i.png"
            same_as_first p512 "$out/p512-tiled-$i.png"
        fi
        if way untiled; then
            measure "p512-untiled-$i" "${p512[@]}" --untiled -o "$out/p512-untiled-$i.png"
            same_as_first p512 "$out/p512-untiled-$i.png"
        fi
        if [ $has_service = 1 ]; then
            measure "p512-service-$i" "$he" submit --resize 512x512 --server "http://127.0.0.1:$port" \
                --key "$out/key2048" --full-check -o "$out/p512-service-$i.png"
            same_as_first p512 "$out/p512-service-$i.png"
        fi
    done
    stop_server
fi

if want 12; then
    echo "== $size, 2048 bits: $paths, $runs run(s) each, alternated"
    [ $has_service = 1 ] && start_server server-12
    for i in $(seq 1 "$runs"); do
        if way tiled; then
            measure "tiled-$i" "${blur[@]}" -o "$out/tiled-$i.png"
            same_as_first p12 "$out/tiled-$i.png"
        fi
        if way untiled; then
            measure "untiled-$i" "$he" blur "$out/photo.png" --key "$out/key2048" --untiled -o "$out/untiled-$i.png"
            same_as_first p12 "$out/untiled-$i.png"
        fi
        if [ $has_service = 1 ]; then
            measure "service-$i" "${submit[@]}" -o "$out/service-$i.png"
            same_as_first p12 "$out/service-$i.png"
        fi
    done
    stop_server
fi

# Each interrupted pair runs between two uninterrupted runs of the same
# command, its baseline (their mean: this VM's speed drifts by 10% and more
# within minutes, so one run before the pair is not enough), and all give
# the same bytes. Path `tiled` runs the `he blur` pair, `service` the
# `he submit` pair.
if want resume; then
    echo "== $size killed at about 50% and resumed, each between two uninterrupted runs"
    # resume_pair NAME CMD...: CMD uninterrupted, killed and resumed, and
    # uninterrupted again; all give the same bytes.
    resume_pair() {
        local name="$1" run
        shift
        measure "$name-whole" "$@" -o "$out/$name-whole.png"
        interrupted "$name-resume" "$@" -o "$out/$name-resume.png"
        measure "$name-after" "$@" -o "$out/$name-after.png"
        for run in whole resume after; do same_as_first resume "$out/$name-$run.png"; done
    }
    if way tiled || [ $has_service = 0 ]; then
        resume_pair blur "${blur[@]}"
    fi
    if [ $has_service = 1 ]; then
        start_server server-resume
        resume_pair service "${submit[@]}"
        stop_server
    fi
fi

if want 48; then
    echo "== 8000x6000, 2048 bits"
    "$target/release/examples/phone_photo" 8000x6000 "$out/photo48.png" >/dev/null
    if way tiled; then
        measure tiled48 "$he" blur "$out/photo48.png" --key "$out/key2048" -o "$out/tiled48.png"
        same_as_first p48 "$out/tiled48.png"
    fi
    if way untiled; then
        measure untiled48 "$he" blur "$out/photo48.png" --key "$out/key2048" --untiled -o "$out/untiled48.png"
        same_as_first p48 "$out/untiled48.png"
    fi
    if [ $has_service = 1 ]; then
        start_server server-48
        measure service48 "$he" submit "$out/photo48.png" --server "http://127.0.0.1:$port" \
            --key "$out/key2048" --full-check -o "$out/service48.png"
        stop_server
        same_as_first p48 "$out/service48.png"
    fi
fi

if want 3072; then
    echo "== $size, 3072 bits"
    "$he" keygen -o "$out/key3072" --key-bits 3072 >/dev/null
    if [ $has_service = 1 ]; then
        start_server server-3072
        measure service3072 "$he" submit "$out/photo.png" --server "http://127.0.0.1:$port" \
            --key "$out/key3072" --full-check -o "$out/service3072.png"
        stop_server
    else
        measure tiled3072 "$he" blur "$out/photo.png" --key "$out/key3072" -o "$out/tiled3072.png"
    fi
fi

# pace NAME: the server's median filter time per tile (ms) in the job of
# client run NAME (a resumed run's job is its killed run's too).
pace() {
    local job
    job="$(sed -n 's/^  job \([0-9a-f]*\) .*/\1/p' "$out/$1.out" | head -n 1)"
    [ -n "$job" ] || return 0
    grep "job done job=$job/" "$out/server-resume.err" | sed -n 's/.*filter_ms=\([0-9]*\).*/\1/p' | median
}

# The table.
list() { local f="$1" p="$2" v=""; for i in $(seq 1 "$runs"); do v="$v $($f "$p-$i")"; done; echo "$v"; }
row() { printf '%-34s %10s %10s %12s %12s  %s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t ? "ok" : "MISSED")}'; }
# rows PREFIX LABEL TILED-TARGET SERVICE-TARGET SERVER: the tiled, untiled
# and service rows of part 512 or 12 (PREFIX p512- or nothing).
# A ratio needs both of its paths; each row is printed if its path ran.
rows() {
    local p="$1" label="$2" server="$5" tw="" uw="" sw srss crss against=""
    way tiled && tw="$(list wall "${p}tiled" | median)"
    way untiled && uw="$(list wall "${p}untiled" | median)"
    if way tiled; then
        [ -z "$uw" ] || against="tiled/untiled wall $(ratio "$tw" "$uw") <= $3: $(verdict "$(ratio "$tw" "$uw")" "$3")"
        row "$label in process, tiled" "$tw" "$(list cpu "${p}tiled" | median)" "$(list rss "${p}tiled" | max)" "-" "$against"
    fi
    if way untiled; then
        row "$label in process, untiled" "$uw" "$(list cpu "${p}untiled" | median)" "$(list rss "${p}untiled" | max)" "-" ""
    fi
    [ $has_service = 1 ] || return 0
    sw="$(list wall "${p}service" | median)" srss="$(rss "$server")" crss="$(list rss "${p}service" | max)"
    against=""
    [ -z "$tw" ] || against="service/in-process wall $(ratio "$sw" "$tw") <= $4: $(verdict "$(ratio "$sw" "$tw")" "$4")"
    row "$label service" "$sw" "$(list cpu "${p}service" | median)" "$crss" "$srss" "$against"
    [ -n "$p" ] || row "" "" "" "" "" "client $crss MiB <= 400: $(verdict "$crss" 400); server $srss MiB <= 600: $(verdict "$srss" 600)"
}
echo
echo "$(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); RGB, 3x3 mean; parts $parts; medians of $runs run(s)"
row "run" "wall s" "CPU s" "client MiB" "server MiB" "target"
if want 512; then rows p512- "512x512 (2048)" 1.03 1.15 server-512; fi
if want 12; then rows "" "$size (2048)" 1.00 1.10 server-12; fi
for r in blur service; do
    [ -f "$out/$r-after.time" ] || continue
    total="$(awk -v a="$(cpu "$r-resume-killed")" -v b="$(cpu "$r-resume-resumed")" 'BEGIN {printf "%.2f", a + b}')"
    base="$(awk -v a="$(cpu "$r-whole")" -v b="$(cpu "$r-after")" 'BEGIN {printf "%.2f", (a + b) / 2}')"
    c="$(ratio "$total" "$base")"
    row "$size $r, uninterrupted, before" "$(wall "$r-whole")" "$(cpu "$r-whole")" "$(rss "$r-whole")" "-" ""
    row "$size $r, killed + resumed" "$(wall "$r-resume-killed")+$(wall "$r-resume-resumed")" "$total" \
        "$(rss "$r-resume-resumed")" "-" "CPU vs the mean of before and after $c <= 1.05: $(verdict "$c" 1.05)"
    row "$size $r, uninterrupted, after" "$(wall "$r-after")" "$(cpu "$r-after")" "$(rss "$r-after")" "-" \
        "after/before CPU $(ratio "$(cpu "$r-after")" "$(cpu "$r-whole")") (the machine's drift)"
    if [ "$r" = service ]; then
        # The server filters the same work in every tile: its median time
        # per tile during each run is the machine's pace then.
        pw="$(pace service-whole)" pp="$(pace service-resume-resumed)" pa="$(pace service-after)"
        if [ -n "$pw" ] && [ -n "$pp" ] && [ -n "$pa" ]; then
            n="$(awk -v t="$total" -v p="$pp" -v a="$(cpu service-whole)" -v w="$pw" -v b="$(cpu service-after)" -v f="$pa" \
                'BEGIN {printf "%.3f", (t / p) / ((a / w + b / f) / 2)}')"
            row "" "" "" "" "" "server's median filter ms per tile: before $pw, pair $pp, after $pa;"
            row "" "" "" "" "" "CPU vs uninterrupted at the server's pace $n (not the target's figure)"
        fi
    fi
done
if want 48; then
    # against12 NAME: the 48 MP / 12 MP wall ratio of one way of running.
    against12() {
        local r
        if want 12; then
            r="$(ratio "$(wall "${1}48")" "$(list wall "$1" | median)")"
            echo "48 MP / 12 MP wall $r <= 4.4: $(verdict "$r" 4.4)"
        else
            echo "(run part 12 too for the 48 MP / 12 MP ratio)"
        fi
    }
    if way tiled; then
        row "8000x6000 (2048) in process, tiled" "$(wall tiled48)" "$(cpu tiled48)" "$(rss tiled48)" "-" "$(against12 tiled)"
    fi
    if way untiled; then
        row "8000x6000 (2048) in process, untiled" "$(wall untiled48)" "$(cpu untiled48)" "$(rss untiled48)" "-" "$(against12 untiled)"
    fi
    if [ $has_service = 1 ]; then
        row "8000x6000 (2048) service" "$(wall service48)" "$(cpu service48)" "$(rss service48)" "$(rss server-48)" \
            "$(against12 service)"
        row "" "" "" "" "" "client <= 400: $(verdict "$(rss service48)" 400); server <= 600: $(verdict "$(rss server-48)" 600)"
    fi
fi
if want 3072; then
    if [ $has_service = 1 ]; then
        row "$size (3072) service" "$(wall service3072)" "$(cpu service3072)" "$(rss service3072)" "$(rss server-3072)" "reported"
    else
        row "$size (3072) in process" "$(wall tiled3072)" "$(cpu tiled3072)" "$(rss tiled3072)" "-" "reported"
    fi
fi
echo "every result exact (checked by each run, and byte for byte against each other); every resume resumed"
