#!/usr/bin/env bash
# Side-by-side load test on loopback, in one run:
#   1. direct to the upstream (the built-in records service),
#   2. nginx as a plain reverse proxy (no logging) in front of it,
#   3. s62 with durable RocksDB logging (release build) in front of it.
# wrk, 64 connections, small JSON responses (one person record, ~260 bytes), bounded duration;
# then one connection at a time, to show the latency s62 adds without queueing.
# Prints req/s, p50 and p99 for each, the ratios s62/nginx, and checks the log afterwards.
#
# Usage: scripts/loadtest.sh [-d SECONDS] [-c CONNECTIONS] [-t WRK_THREADS]
# Needs: wrk and nginx (installed with apt-get if missing), a Rust toolchain.
set -euo pipefail

DURATION=10
CONNS=64
THREADS=1
while getopts "d:c:t:" opt; do
  case "$opt" in
    d) DURATION="$OPTARG" ;;
    c) CONNS="$OPTARG" ;;
    t) THREADS="$OPTARG" ;;
    *) echo "usage: $0 [-d seconds] [-c connections] [-t wrk threads]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source scripts/env.sh

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

cargo build --release --bin s62 >&2
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

TMP="$(mktemp -d /tmp/s62-loadtest.XXXXXX)"
# Run a private copy: a shared target folder may be rebuilt by someone else mid-run.
cp "$TARGET/release/s62" "$TMP/s62"
S62="$TMP/s62"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1; logs:" >&2
  tail -n 20 "$TMP"/*.log >&2 || true
  exit 1
}

UP_PORT=$(free_port); NGINX_PORT=$(free_port); S62_PORT=$(free_port)
PATH_UNDER_TEST="/people/P-1001"

# 1. The upstream.
"$S62" records --listen "127.0.0.1:$UP_PORT" >"$TMP/records.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

# 2. nginx, a plain reverse proxy with keep-alive to the upstream and no logging.
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log stderr crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream records { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://records;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
wait_port "$NGINX_PORT"

# 3. s62 with durable logging to RocksDB.
"$S62" keygen --origin loadtest.s62.local/log --out "$TMP/keys" >/dev/null
cat >"$TMP/sidecar.toml" <<EOF
[log]
data_dir = "$TMP/log"
key_file = "$TMP/keys/log.key"
origin = "loadtest.s62.local/log"

[listen]
address = "127.0.0.1:$S62_PORT"

[upstream]
url = "http://127.0.0.1:$UP_PORT"

[identity]
sources = ["trusted_header"]
header = "x-s62-user"
trusted_peers = ["127.0.0.0/8"]
required = true

[routes]
strict = true

[[routes.rule]]
name = "person.view"
method = "GET"
path = "/people/{id}"
operation = "consultation"
subjects = ["path:id"]
records = ["path:id"]
returned_subjects = ["response:/id"]
returned_records = ["response:/address_id"]
EOF
RUST_LOG=info "$S62" serve --config "$TMP/sidecar.toml" >"$TMP/s62.log" 2>&1 &
S62_PID=$!
PIDS+=($S62_PID)
wait_port "$S62_PORT"

HEADERS=(-H "x-s62-user: pc-4021" -H "x-s62-purpose: investigation" -H "x-s62-justification: load test")

# Runs wrk; prints "req_per_s p50_ms p99_ms".
measure() {
  local url="$1" out
  wrk -t"$THREADS" -c"$CONNS" -d2s "${HEADERS[@]}" "$url" >/dev/null  # warm-up
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${HEADERS[@]}" "$url")"
  echo "$out" >"$TMP/wrk-$(echo "$url" | cut -d: -f3 | cut -d/ -f1).txt"
  if echo "$out" | grep -q "Non-2xx"; then
    echo "non-2xx responses from $url:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99
  rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {
  case "$1" in
    *us) awk -v v="${1%us}" 'BEGIN {printf "%.3f", v/1000}' ;;
    *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v}' ;;
    *s)  awk -v v="${1%s}" 'BEGIN {printf "%.3f", v*1000}' ;;
    *)   echo "$1" ;;
  esac
}

echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s GET $PATH_UNDER_TEST on loopback, $(nproc) cores shared by everything" >&2
read -r D_RPS D_P50 D_P99 < <(measure "http://127.0.0.1:$UP_PORT$PATH_UNDER_TEST")
read -r N_RPS N_P50 N_P99 < <(measure "http://127.0.0.1:$NGINX_PORT$PATH_UNDER_TEST")
read -r S_RPS S_P50 S_P99 < <(measure "http://127.0.0.1:$S62_PORT$PATH_UNDER_TEST")

printf "\n%-34s %12s %10s %10s\n" "target" "req/s" "p50 ms" "p99 ms"
printf "%-34s %12s %10s %10s\n" "direct to upstream" "$D_RPS" "$D_P50" "$D_P99"
printf "%-34s %12s %10s %10s\n" "nginx (no logging)" "$N_RPS" "$N_P50" "$N_P99"
printf "%-34s %12s %10s %10s\n" "s62 (durable RocksDB log)" "$S_RPS" "$S_P50" "$S_P99"
awk -v s="$S_RPS" -v n="$N_RPS" -v d="$D_RPS" -v sp="$S_P99" -v np="$N_P99" -v dp="$D_P99" 'BEGIN {
  printf "\nthroughput s62/nginx: %.2fx   s62/direct: %.2fx   nginx/direct: %.2fx\n", s/n, s/d, n/d
  printf "p99 s62/nginx: %.2fx   p99 added by s62 over direct: %.3f ms (nginx adds %.3f ms)\n", sp/np, sp-dp, np-dp
}'

# Added latency without queueing: one connection at a time.
CONNS=1
read -r D1_RPS D1_P50 D1_P99 < <(measure "http://127.0.0.1:$UP_PORT$PATH_UNDER_TEST")
read -r N1_RPS N1_P50 N1_P99 < <(measure "http://127.0.0.1:$NGINX_PORT$PATH_UNDER_TEST")
read -r S1_RPS S1_P50 S1_P99 < <(measure "http://127.0.0.1:$S62_PORT$PATH_UNDER_TEST")
printf "\n%-34s %12s %10s %10s\n" "one connection" "req/s" "p50 ms" "p99 ms"
printf "%-34s %12s %10s %10s\n" "direct to upstream" "$D1_RPS" "$D1_P50" "$D1_P99"
printf "%-34s %12s %10s %10s\n" "nginx (no logging)" "$N1_RPS" "$N1_P50" "$N1_P99"
printf "%-34s %12s %10s %10s\n" "s62 (durable RocksDB log)" "$S1_RPS" "$S1_P50" "$S1_P99"
awk -v s="$S1_P99" -v d="$D1_P99" 'BEGIN { printf "p99 added by s62 at one connection: %.3f ms (two durable appends per request)\n", s-d }'

# Stop s62 cleanly (drains the writer) and check what it logged.
kill -TERM "$S62_PID"; wait "$S62_PID" 2>/dev/null || true
grep "log writer totals" "$TMP/s62.log" | sed 's/.*totals/log writer:/' || true
ENTRIES=$("$S62" entries --data-dir "$TMP/log" | wc -l)
echo "log holds $ENTRIES entries (an intent and an outcome per request, plus start/stop)"
"$S62" verify --data-dir "$TMP/log" --key "$TMP/keys/log.pub" >/dev/null && echo "log verifies"
