#!/usr/bin/env bash
# The documented deployment (docs/SCALING.md) with real processes on
# loopback: Redis (deploy/cluster/redis.conf, AOF), two API nodes
# (deploy/cluster/he-api.toml) behind nginx (deploy/cluster/nginx-he.conf,
# TLS with a CA made here) and three workers (deploy/cluster/he-worker.toml),
# the files as they are, with their paths and ports moved into a scratch
# directory. Then, each step bounded in time:
#
#   1. a load test through nginx, many clients with their own keys: every
#      result exact under its own client's key, and the work spread over
#      more than one worker;
#   2. kill -9 of the worker running a job: the job completes, exact, and
#      another worker's log shows it took the job over;
#   3. kill -9 of an API node while a client waits for its job through
#      nginx: the job completes, exact, through the other node;
#   4. kill -9 of redis-server in the middle of a load test, restarted on
#      its AOF: every job completes, exact, none lost or mixed;
#   5. a token's compute quota used up through one API node is refused by
#      the other;
#   6. an upload refused before it is read (a token's stored-bytes quota)
#      through nginx: the client gets the refusal, not a 502 from nginx
#      (the node reads and discards the refused body first).
#
#   scripts/cluster-test.sh [--throughput] [--keep DIR] [--base-port P]
#
# --throughput (outside CI, about 10 minutes here): the same load test with
# 1, 2 and 3 workers, and against `he serve` with the embedded store, in
# one run; prints a table (requests/s and the ratio to the embedded store).
#
# Needs redis-server, redis-cli, nginx, openssl and curl (.ci/run installs
# the Debian packages). Exits non-zero on any failed check; every process
# it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

throughput=0 keep="" base=18840
while [ $# -gt 0 ]; do
    case "$1" in
        --throughput) throughput=1 ;;
        --keep) keep="$2"; shift ;;
        --base-port) base="$2"; shift ;;
        *) echo "usage: $0 [--throughput] [--keep DIR] [--base-port P]" >&2; exit 2 ;;
    esac
    shift
done
for tool in redis-server redis-cli nginx openssl curl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "$tool is needed (apt-get install redis-server nginx-light openssl curl)" >&2
        exit 1
    }
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target="${target:-${CARGO_TARGET_DIR:-target}}"
cargo build --quiet --release -p he-cli
he="$target/release/he"

if [ -n "$keep" ]; then
    d="$keep"
    rm -rf "$d"
    mkdir -p "$d"
else
    d="$(mktemp -d)"
fi
mkdir -p "$d/etc/tls" "$d/redis" "$d/nginx" "$d/out"
chmod 700 "$d/etc"

redis_port=$base api1_port=$((base + 1)) api2_port=$((base + 2)) nginx_port=$((base + 3))
worker_ports=($((base + 4)) $((base + 5)) $((base + 6)))
embedded_port=$((base + 7))
for p in $(seq "$base" $((base + 7))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use: pick others with --base-port" >&2
        exit 1
    fi
done

declare -A pids=()
cleanup() {
    local name
    for name in "${!pids[@]}"; do
        kill "${pids[$name]}" 2>/dev/null || true
    done
    for name in "${!pids[@]}"; do
        wait "${pids[$name]}" 2>/dev/null || true
    done
    [ -n "$keep" ] || rm -rf "$d"
}
trap cleanup EXIT

fail() {
    echo "FAILED: $*" >&2
    for f in "$d"/*.log; do
        echo "--- last lines of $f" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# waitfor SECONDS WHAT CMD...: runs CMD every 0.1 s until it succeeds.
waitfor() {
    local secs="$1" what="$2" t=0
    shift 2
    until "$@" >/dev/null 2>&1; do
        t=$((t + 1))
        [ "$t" -le $((secs * 10)) ] || fail "$what within $secs s"
        sleep 0.1
    done
}

# --- the files of deploy/cluster, moved into $d ---
secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'requirepass %s\n' "$secret" >"$d/etc/redis-secret.conf"
printf '%s\n' "$secret" >"$d/etc/redis-password"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/etc/metrics-token"
chmod 600 "$d/etc/redis-secret.conf" "$d/etc/redis-password" "$d/etc/metrics-token"
sed -e "s|^port 6379|port $redis_port|" -e "s|^dir .*|dir $d/redis|" \
    -e "s|/etc/redis/he-secret.conf|$d/etc/redis-secret.conf|" \
    deploy/cluster/redis.conf >"$d/etc/redis.conf"
for role in api worker; do
    sed -e "s|/etc/he-serve|$d/etc|g" -e "s|127.0.0.1:6379|127.0.0.1:$redis_port|" \
        "deploy/cluster/he-$role.toml" >"$d/etc/he-$role.toml"
done
# A CA of the test's own, and nginx's certificate signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=he cluster test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$d/etc/tls/ca-key.pem" -out "$d/etc/tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/etc/tls/key.pem" -out "$d/etc/tls/cert.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$d/etc/tls/ext.cnf"
openssl x509 -req -in "$d/etc/tls/cert.csr" -CA "$d/etc/tls/ca.pem" -CAkey "$d/etc/tls/ca-key.pem" \
    -CAcreateserial -days 1 -extfile "$d/etc/tls/ext.cnf" -out "$d/etc/tls/cert.pem" 2>/dev/null
sed -e "s|/etc/he-serve|$d/etc|g" -e "s|listen 443 ssl;|listen 127.0.0.1:$nginx_port ssl;|" \
    -e "s|127.0.0.1:8787|127.0.0.1:$api1_port|" -e "s|127.0.0.1:8788|127.0.0.1:$api2_port|" \
    deploy/cluster/nginx-he.conf >"$d/etc/nginx-he.conf"
cat >"$d/etc/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx/nginx.pid;
error_log $d/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/nginx/body;
    proxy_temp_path $d/nginx/proxy;
    fastcgi_temp_path $d/nginx/fastcgi;
    uwsgi_temp_path $d/nginx/uwsgi;
    scgi_temp_path $d/nginx/scgi;
    include $d/etc/nginx-he.conf;
}
EOF

# Tokens: alice for the load (16 jobs at once: every client of the load
# test is hers), carol with one unit of compute an hour, erin with 1 MiB
# of storage.
alice="$("$he" token create alice --tokens "$d/etc/tokens.json" 2>/dev/null)"
carol="$("$he" token create carol --tokens "$d/etc/tokens.json" 2>/dev/null)"
erin="$("$he" token create erin --tokens "$d/etc/tokens.json" 2>/dev/null)"
python3 - "$d/etc/tokens.json" <<'EOF'
import json, sys
p = sys.argv[1]
f = json.load(open(p))
for t in f["tokens"]:
    if t["name"] == "alice":
        t["quota"] = {"concurrent_jobs": 16}
    if t["name"] == "carol":
        t["quota"] = {"compute_per_hour": 1}
    if t["name"] == "erin":
        t["quota"] = {"stored_bytes": 1 << 20}
json.dump(f, open(p, "w"), indent=2)
EOF
chmod 600 "$d/etc/tokens.json"

# --- starting and stopping the parts ---
start_redis() {
    redis-server "$d/etc/redis.conf" >>"$d/redis.log" 2>&1 &
    pids[redis]=$!
    waitfor 10 "redis-server answers" env REDISCLI_AUTH="$secret" redis-cli -p "$redis_port" ping
}
rcli() { REDISCLI_AUTH="$secret" redis-cli --no-auth-warning -p "$redis_port" "$@"; }
health() { curl -sf "http://127.0.0.1:$1/v1/health"; }
# start_node NAME ROLE PORT [FLAGS...]
start_node() {
    local name="$1" role="$2" port="$3"
    shift 3
    RUST_LOG=info "$he" serve --config "$d/etc/he-$role.toml" --listen "127.0.0.1:$port" "$@" \
        >>"$d/$name.log" 2>&1 &
    pids[$name]=$!
    waitfor 30 "$name answers /v1/health" health "$port"
}
stop() {
    local name="$1" sig="${2:-TERM}"
    kill "-$sig" "${pids[$name]}" 2>/dev/null || true
    wait "${pids[$name]}" 2>/dev/null || true
    unset "pids[$name]"
}
start_nginx() {
    "$nginx_bin" -c "$d/etc/nginx.conf" -e "$d/nginx.log" >>"$d/nginx.log" 2>&1 &
    pids[nginx]=$!
    waitfor 10 "nginx answers" curl -sf --cacert "$d/etc/tls/ca.pem" "https://127.0.0.1:$nginx_port/v1/health"
}
start_workers() {
    local i
    for i in $(seq 1 "$1"); do
        start_node "worker$i" worker "${worker_ports[$((i - 1))]}" --visibility-timeout 5
    done
}
url="https://127.0.0.1:$nginx_port"
client=(--server "$url" --ca "$d/etc/tls/ca.pem")
loadtest() { HE_TOKEN="$alice" "$he" loadtest "${client[@]}" "$@"; }
node_of() { health "$1" | sed -n 's/.*"node":"\([^"]*\)".*/\1/p'; }

start_redis
start_node api1 api "$api1_port"
start_node api2 api "$api2_port"
start_workers 3
start_nginx
echo "== up: redis :$redis_port, api :$api1_port :$api2_port, workers :${worker_ports[*]}, nginx (TLS) :$nginx_port"
health "$api1_port" | grep -q '"store":"redis"' || fail "api1's health does not name the redis store: $(health "$api1_port")"

echo "== 1. load test through nginx: 6 clients with their own keys, 3 requests each"
loadtest --clients 6 --requests 3 --size 48 >"$d/out/load.txt" 2>&1 || { cat "$d/out/load.txt"; fail "the load test"; }
cat "$d/out/load.txt"
grep -q "checked: 18 of 18 results decrypt" "$d/out/load.txt" || fail "not every result was exact"
busy=0
for i in 1 2 3; do
    n="$(grep -c "job done" "$d/worker$i.log" || true)"
    echo "   worker$i filtered $n units"
    [ "$n" = 0 ] || busy=$((busy + 1))
done
[ "$busy" -ge 2 ] || fail "the work went to $busy worker(s), not spread"

echo "== 2. kill -9 of the worker running a job"
# An 11x11 kernel of pseudo-random 0/1 weights over their sum: a few
# seconds of filtering, so the job is caught running.
python3 - "$d/etc/kernel.txt" <<'EOF'
import sys
x, w = 2463534242, []
for i in range(121):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    w.append(1 if i == 60 else x & 1)
rows = [" ".join(map(str, w[r * 11:(r + 1) * 11])) for r in range(11)]
open(sys.argv[1], "w").write("\n".join(rows) + "\ndivisor %d\n" % sum(w))
EOF
photo=crates/he-cli/assets/astronaut-256.png
HE_TOKEN="$alice" "$he" submit "$photo" "${client[@]}" --single-upload --resize 128x128 \
    --kernel "$d/etc/kernel.txt" --key-bits 2048 --full-check --quiet -o "$d/out/takeover.png" \
    >"$d/submit-takeover.log" 2>&1 &
submit_pid=$!
# The worker holding it: the consumer with a pending entry in the stream.
holder=""
for _ in $(seq 1 600); do
    holder="$(rcli XPENDING he:work workers - + 1 2>/dev/null | sed -n 2p || true)"
    [ -z "$holder" ] || break
    kill -0 "$submit_pid" 2>/dev/null || fail "the job ended before a worker was seen running it"
    sleep 0.1
done
[ -n "$holder" ] || fail "no worker took the job within 60 s"
victim=""
for i in 1 2 3; do
    [ "$(node_of "${worker_ports[$((i - 1))]}")" = "$holder" ] && victim="worker$i"
done
[ -n "$victim" ] || fail "no worker answers as $holder"
stop "$victim" KILL
echo "   killed $victim ($holder) while it ran the job"
wait "$submit_pid" || { cat "$d/submit-takeover.log"; fail "the job after its worker was killed"; }
taker="$(grep -l "claimed work from a stopped worker" "$d"/worker*.log | xargs grep -l "$holder" || true)"
[ -n "$taker" ] || fail "no worker's log shows it claimed the job from $holder"
echo "   $(basename "$taker" .log) took it over; the result is exact (he submit --full-check)"
i="${victim#worker}"
start_node "$victim" worker "${worker_ports[$((i - 1))]}" --visibility-timeout 5

echo "== 3. kill -9 of an API node while a client waits for its job through nginx"
HE_TOKEN="$alice" "$he" submit "$photo" "${client[@]}" --resize 128x128 \
    --kernel "$d/etc/kernel.txt" --key-bits 2048 --full-check -o "$d/out/api-kill.png" \
    >"$d/submit-api-kill.log" 2>&1 &
submit_pid=$!
# Killed once a worker runs the job: the client is then polling.
for _ in $(seq 1 600); do
    [ -z "$(rcli XPENDING he:work workers - + 1 2>/dev/null | sed -n 2p)" ] || break
    kill -0 "$submit_pid" 2>/dev/null || fail "the job ended before a worker was seen running it"
    sleep 0.1
done
stop api1 KILL
echo "   killed api1 while the job ran"
wait "$submit_pid" || { cat "$d/submit-api-kill.log"; fail "the job after api1 was killed"; }
job="$(sed -n 's/.*job \([0-9a-f]\{32\}\).*/\1/p' "$d/submit-api-kill.log" | head -n 1)"
[ -n "$job" ] || { cat "$d/submit-api-kill.log"; fail "he submit did not say which job it ran"; }
grep -q "$job" "$d/api2.log" || fail "api2 never served job $job"
echo "   job $job completed through api2, exact (he submit --full-check)"
start_node api1 api "$api1_port"

echo "== 4. kill -9 of redis-server in the middle of a load test, restarted on its AOF"
loadtest --clients 4 --requests 4 --size 64 >"$d/out/load-redis.txt" 2>&1 &
load_pid=$!
waitfor 120 "a job in the stream" sh -c "[ \"\$(REDISCLI_AUTH=$secret redis-cli --no-auth-warning -p $redis_port XLEN he:work)\" -gt 0 ]"
stop redis KILL
echo "   killed redis-server; restarting it in 2 s"
sleep 2
start_redis
wait "$load_pid" || { cat "$d/out/load-redis.txt"; fail "the load test across the Redis restart"; }
cat "$d/out/load-redis.txt"
grep -q "checked: 16 of 16 results decrypt" "$d/out/load-redis.txt" || fail "a job was lost or wrong across the Redis restart"

echo "== 5. a token's compute quota used up through one API node is refused by the other"
carol_submit() {
    HE_TOKEN="$carol" "$he" submit "$photo" --server "http://127.0.0.1:$1" --single-upload \
        --resize 16x16 --key-bits 2048 -o "$d/out/carol-$1.png" >"$d/out/carol-$1.txt" 2>&1
}
carol_submit "$api1_port" || { cat "$d/out/carol-$api1_port.txt"; fail "carol's first job, through api1"; }
if carol_submit "$api2_port"; then
    fail "carol's second job went through api2 beyond her compute quota"
fi
grep -q "compute_per_hour" "$d/out/carol-$api2_port.txt" || { cat "$d/out/carol-$api2_port.txt"; fail "api2 refused carol for another reason"; }
echo "   api2 refused: $(grep -m1 -o "compute_per_hour.*" "$d/out/carol-$api2_port.txt")"

echo "== 6. an upload refused before it is read, through nginx: the client gets the refusal"
# About 9 MiB of ciphertexts, over erin's 1 MiB: the node refuses from the
# declared length, while nginx is still streaming the body to it.
if HE_TOKEN="$erin" "$he" submit "$photo" "${client[@]}" --single-upload --resize 1024x1024 \
    --key-bits 2048 --timeout 60 -o "$d/out/erin.png" >"$d/out/erin.txt" 2>&1; then
    fail "erin's job went through beyond her stored-bytes quota"
fi
grep -q "stored_bytes" "$d/out/erin.txt" || { cat "$d/out/erin.txt"; fail "erin did not get the quota's refusal through nginx"; }
echo "   refused through nginx: $(grep -m1 -o "stored_bytes.*" "$d/out/erin.txt")"

if [ "$throughput" = 1 ]; then
    echo "== throughput: the same load with 1, 2 and 3 workers, and the embedded store"
    load=(--clients 8 --requests 8 --size 256)
    jobs=64
    rate() { sed -n 's/.* \([0-9.]*\) requests\/s.*/\1/p' "$1"; }
    # Redis' own counts: commands run, bytes in and out.
    calls() { rcli INFO commandstats | sed -n 's/.*:calls=\([0-9]*\),.*/\1/p' | awk '{s += $1} END {print s}'; }
    netbytes() { rcli INFO stats | tr -d '\r' | awk -F: '/^total_net_(input|output)_bytes/ {s += $2} END {print s}'; }
    for n in 1 2 3; do
        for i in 1 2 3; do
            [ -z "${pids[worker$i]:-}" ] || stop "worker$i"
        done
        start_workers "$n"
        c0="$(calls)" b0="$(netbytes)"
        loadtest "${load[@]}" >"$d/out/tp-$n.txt" 2>&1 || { cat "$d/out/tp-$n.txt"; fail "throughput with $n workers"; }
        c1="$(calls)" b1="$(netbytes)"
        echo "   $n worker(s): $(rate "$d/out/tp-$n.txt") requests/s; Redis: $(( (c1 - c0) / jobs )) commands and $(( (b1 - b0) / jobs / 1024 )) KiB in+out per job (health checks and polls included)"
    done
    for i in 1 2 3; do
        [ -z "${pids[worker$i]:-}" ] || stop "worker$i"
    done
    RUST_LOG=warn "$he" serve --listen "127.0.0.1:$embedded_port" >>"$d/embedded.log" 2>&1 &
    pids[embedded]=$!
    waitfor 30 "the embedded server answers" health "$embedded_port"
    "$he" loadtest --server "http://127.0.0.1:$embedded_port" "${load[@]}" >"$d/out/tp-embedded.txt" 2>&1 \
        || { cat "$d/out/tp-embedded.txt"; fail "throughput of the embedded store"; }
    e="$(rate "$d/out/tp-embedded.txt")"
    echo
    echo "$(date -u +%Y-%m-%d) on $(nproc) cores; he loadtest ${load[*]} (2048-bit keys, 3x3 mean); every result exact"
    printf '%-40s %12s %10s\n' "store" "requests/s" "vs embedded"
    printf '%-40s %12s %10s\n' "embedded (he serve, one process)" "$e" "1.00"
    for n in 1 2 3; do
        r="$(rate "$d/out/tp-$n.txt")"
        printf '%-40s %12s %10s\n' "redis, 2 API nodes + nginx, $n worker(s)" "$r" \
            "$(awk -v a="$r" -v b="$e" 'BEGIN {printf "%.2f", a / b}')"
    done
fi
echo "every check passed"
