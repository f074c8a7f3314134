#!/usr/bin/env bash
# Side-by-side load test on loopback, in one run:
#   1. direct to the upstream (the built-in records service),
#   2. nginx as a plain reverse proxy (no logging) in front of it,
#   3. s62 with durable RocksDB logging (release build) in front of it.
# wrk, 64 connections, small JSON responses (one person record, ~260 bytes), bounded duration,
# on a route whose rule extracts `returned_subjects` from the response (so s62 parses every
# response before releasing it); then one connection at a time, to show the latency s62 adds
# without queueing, next to this disk's fdatasync latency measured in the log's own folder.
# Prints req/s, p50 and p99 for each, the ratio s62/nginx at 64 connections, the p50 s62 adds over
# nginx at one connection against the target (2 fdatasyncs + 0.2 ms), and checks the log afterwards.
#
# Usage: scripts/loadtest.sh [-d SECONDS] [-c CONNECTIONS] [-t WRK_THREADS] [-P PERF_SECONDS]
#   -P N   after the measurements, record N seconds of `perf record -g` of s62 under the same
#          load (64 connections) and print the top symbols (needs perf; the figures above it are
#          taken without perf attached).
# Environment: S62_BIN=path runs that binary instead of building target/release/s62 (to compare
#   two builds under the same conditions, run the script alternately with each);
#   S62_CHECKPOINT_INTERVAL_MS=N runs s62 with [log.checkpoint] interval_ms = N (default 0: a
#   checkpoint signed at every commit).
# Needs: wrk and nginx (installed with apt-get if missing), python3, a Rust toolchain.
set -euo pipefail

DURATION=10
CONNS=64
THREADS=2
PERF_SECONDS=0
while getopts "d:c:t:P:" opt; do
  case "$opt" in
    d) DURATION="$OPTARG" ;;
    c) CONNS="$OPTARG" ;;
    t) THREADS="$OPTARG" ;;
    P) PERF_SECONDS="$OPTARG" ;;
    *) echo "usage: $0 [-d seconds] [-c connections] [-t wrk threads] [-P perf seconds]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source scripts/env.sh

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ "$PERF_SECONDS" -gt 0 ] && ! command -v perf >/dev/null 2>&1 && need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if [ -z "${S62_BIN:-}" ]; then
  cargo build --release --bin s62 >&2
  S62_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/s62"
fi

TMP="$(mktemp -d /tmp/s62-loadtest.XXXXXX)"
# Run a private copy: a shared target folder may be rebuilt by someone else mid-run.
cp "$S62_BIN" "$TMP/s62"
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
UP_PID=$!
PIDS+=($UP_PID)
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
NGINX_PID=$!
PIDS+=($NGINX_PID)
wait_port "$NGINX_PORT"

# 3. s62 with durable logging to RocksDB.
"$S62" keygen --origin loadtest.s62.local/log --out "$TMP/keys" >/dev/null
cat >"$TMP/sidecar.toml" <<EOF
[log]
data_dir = "$TMP/log"
key_file = "$TMP/keys/log.key"
origin = "loadtest.s62.local/log"

[log.checkpoint]
interval_ms = ${S62_CHECKPOINT_INTERVAL_MS:-0}

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

# CPU ticks (utime + stime, all threads) of the given processes and their children; with a
# thread name first ("name=tokio-rt-worker"), only threads of that name, with "!name", all others.
cpu_ticks() {
  local filter="" pid task comm total=0
  case "${1:-}" in name=*|'!'*) filter="$1"; shift ;; esac
  for pid in "$@" $(for p in "$@"; do ps -o pid= --ppid "$p" 2>/dev/null; done); do
    for task in /proc/"$pid"/task/*; do
      [ -r "$task/stat" ] || continue
      comm="$(cat "$task/comm" 2>/dev/null)" || continue
      case "$filter" in
        name=*) [ "$comm" = "${filter#name=}" ] || continue ;;
        '!'*) [ "$comm" != "${filter#!}" ] || continue ;;
      esac
      total=$((total + $(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}')))
    done
  done
  echo "$total"
}

# Runs wrk; prints "req_per_s p50_ms p99_ms cpu_us_per_request proxy_us_per_request":
# CPU of the processes in $CPU_PIDS (the target under test, not wrk or the upstream) per
# request, and of their threads named $PROXY_THREADS alone (0 when unset).
measure() {
  local url="$1" out t="$THREADS" c0 c1 p0=0 p1=0 hz
  [ "$t" -gt "$CONNS" ] && t="$CONNS"  # wrk needs a connection per thread
  wrk -t"$t" -c"$CONNS" -d2s "${HEADERS[@]}" "$url" >/dev/null  # warm-up
  c0=$(cpu_ticks $CPU_PIDS)
  [ -n "${PROXY_THREADS:-}" ] && p0=$(cpu_ticks "name=$PROXY_THREADS" $CPU_PIDS)
  out="$(wrk -t"$t" -c"$CONNS" -d"${DURATION}s" --latency "${HEADERS[@]}" "$url")"
  c1=$(cpu_ticks $CPU_PIDS)
  [ -n "${PROXY_THREADS:-}" ] && p1=$(cpu_ticks "name=$PROXY_THREADS" $CPU_PIDS)
  echo "$out" >"$TMP/wrk-$(echo "$url" | cut -d: -f3 | cut -d/ -f1)-c$CONNS.txt"
  if echo "$out" | grep -q "Non-2xx"; then
    echo "non-2xx responses from $url:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99 n
  rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  n="$(echo "$out" | awk '/requests in/ {print $1}')"
  hz="$(getconf CLK_TCK)"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $(awk -v c=$((c1 - c0)) -v p=$((p1 - p0)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f %.1f", c*1e6/hz/n, p*1e6/hz/n}')"
}
to_ms() {
  case "$1" in
    *us) awk -v v="${1%us}" 'BEGIN {printf "%.3f", v/1000}' ;;
    *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v}' ;;
    *s)  awk -v v="${1%s}" 'BEGIN {printf "%.3f", v*1000}' ;;
    *)   echo "$1" ;;
  esac
}

echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s GET $PATH_UNDER_TEST on loopback, $(nproc) cores shared by everything; $(uptime | sed 's/.*load average/load average/')" >&2
read -r D_RPS D_P50 D_P99 D_CPU _ < <(CPU_PIDS="$UP_PID" measure "http://127.0.0.1:$UP_PORT$PATH_UNDER_TEST")
read -r N_RPS N_P50 N_P99 N_CPU _ < <(CPU_PIDS="$NGINX_PID" measure "http://127.0.0.1:$NGINX_PORT$PATH_UNDER_TEST")
read -r S_RPS S_P50 S_P99 S_CPU S_PROXY < <(CPU_PIDS="$S62_PID" PROXY_THREADS=tokio-rt-worker measure "http://127.0.0.1:$S62_PORT$PATH_UNDER_TEST")

# CPU/req: CPU time of the target itself (the upstream for "direct", nginx's processes, s62's
# threads; never wrk's) divided by the requests it answered. For s62, "proxy" is its tokio
# worker threads (HTTP in and out, classification, building entries); the rest is the log
# writer thread and RocksDB's background threads.
printf "\n%-34s %12s %10s %10s %14s\n" "$CONNS connections" "req/s" "p50 ms" "p99 ms" "CPU us/req"
printf "%-34s %12s %10s %10s %14s\n" "direct to upstream" "$D_RPS" "$D_P50" "$D_P99" "$D_CPU"
printf "%-34s %12s %10s %10s %14s\n" "nginx (no logging)" "$N_RPS" "$N_P50" "$N_P99" "$N_CPU"
printf "%-34s %12s %10s %10s %14s\n" "s62 (durable RocksDB log)" "$S_RPS" "$S_P50" "$S_P99" "$S_CPU"
printf "%-34s %12s %10s %10s %14s\n" "  of which proxy threads" "" "" "" "$S_PROXY"
awk -v s="$S_RPS" -v n="$N_RPS" -v d="$D_RPS" -v sp="$S_P99" -v np="$N_P99" -v dp="$D_P99" 'BEGIN {
  printf "\nthroughput s62/nginx: %.2fx (target >= 0.6x: %s)   s62/direct: %.2fx   nginx/direct: %.2fx\n", s/n, (s/n >= 0.6 ? "met" : "NOT met"), s/d, n/d
  printf "p99 s62/nginx: %.2fx   p99 added by s62 over direct: %.3f ms (nginx adds %.3f ms)\n", sp/np, sp-dp, np-dp
}'

# This disk's fdatasync, in the log's own folder while s62 is idle: 1000 appends of 512 bytes,
# each followed by fdatasync (what a RocksDB WAL commit costs at least). Prints "p50_ms p99_ms".
fdatasync_ms() {
  python3 - "$1" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fdatasync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
buf, times = b"x" * 512, []
for _ in range(1000):
    t = time.perf_counter()
    os.write(fd, buf)
    os.fdatasync(fd)
    times.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
times.sort()
print("%.3f %.3f" % (times[499] * 1000, times[989] * 1000))
PY
}
read -r FSYNC_P50 FSYNC_P99 < <(fdatasync_ms "$TMP/log")

# Added latency without queueing: one connection at a time.
CONNS=1
read -r D1_RPS D1_P50 D1_P99 D1_CPU _ < <(CPU_PIDS="$UP_PID" measure "http://127.0.0.1:$UP_PORT$PATH_UNDER_TEST")
read -r N1_RPS N1_P50 N1_P99 N1_CPU _ < <(CPU_PIDS="$NGINX_PID" measure "http://127.0.0.1:$NGINX_PORT$PATH_UNDER_TEST")
read -r S1_RPS S1_P50 S1_P99 S1_CPU S1_PROXY < <(CPU_PIDS="$S62_PID" PROXY_THREADS=tokio-rt-worker measure "http://127.0.0.1:$S62_PORT$PATH_UNDER_TEST")
printf "\n%-34s %12s %10s %10s %14s\n" "one connection" "req/s" "p50 ms" "p99 ms" "CPU us/req"
printf "%-34s %12s %10s %10s %14s\n" "direct to upstream" "$D1_RPS" "$D1_P50" "$D1_P99" "$D1_CPU"
printf "%-34s %12s %10s %10s %14s\n" "nginx (no logging)" "$N1_RPS" "$N1_P50" "$N1_P99" "$N1_CPU"
printf "%-34s %12s %10s %10s %14s\n" "s62 (durable RocksDB log)" "$S1_RPS" "$S1_P50" "$S1_P99" "$S1_CPU"
printf "%-34s %12s %10s %10s %14s\n" "  of which proxy threads" "" "" "" "$S1_PROXY"
awk -v s="$S1_P50" -v n="$N1_P50" -v f="$FSYNC_P50" -v f99="$FSYNC_P99" -v s99="$S1_P99" -v d99="$D1_P99" 'BEGIN {
  printf "fdatasync of 512 B in the log folder, same run: p50 %.3f ms, p99 %.3f ms\n", f, f99
  t = 2 * f + 0.2
  printf "p50 added by s62 over nginx at one connection: %.3f ms (target <= 2 fdatasyncs + 0.2 ms = %.3f ms: %s)\n", s-n, t, (s-n <= t ? "met" : "NOT met")
  printf "p99 added by s62 over direct at one connection: %.3f ms (two durable appends per request)\n", s99-d99
}'

if [ "$PERF_SECONDS" -gt 0 ]; then
  CONNS=64
  wrk -t"$THREADS" -c"$CONNS" -d"$((PERF_SECONDS + 4))s" "${HEADERS[@]}" "http://127.0.0.1:$S62_PORT$PATH_UNDER_TEST" >/dev/null &
  WRK_PID=$!
  sleep 2
  perf record -g -o "$TMP/perf.data" -p "$S62_PID" -- sleep "$PERF_SECONDS" >/dev/null 2>&1
  wait "$WRK_PID" || true
  cp "$TMP/perf.data" "${PERF_OUT:-/tmp/s62-loadtest-perf.data}"
  echo "perf: top symbols of s62 under 64 connections ($PERF_SECONDS s, self time; by thread: perf report -i ${PERF_OUT:-/tmp/s62-loadtest-perf.data} --sort comm)"
  { perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null || true; } \
    | grep -E '^ +[0-9]+\.[0-9]+%' | sed -E 's/ +$//' | cut -c1-150 | head -n 25 || true
fi

# Stop s62 cleanly (drains the writer) and check what it logged.
kill -TERM "$S62_PID"; wait "$S62_PID" 2>/dev/null || true
grep "log writer totals" "$TMP/s62.log" | sed 's/.*totals/log writer:/' || true
ENTRIES=$("$S62" entries --data-dir "$TMP/log" | wc -l)
echo "log holds $ENTRIES entries (an intent and an outcome per request, plus start/stop)"
"$S62" verify --data-dir "$TMP/log" --key "$TMP/keys/log.pub" >/dev/null && echo "log verifies"
