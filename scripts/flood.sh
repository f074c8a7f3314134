#!/usr/bin/env bash
# Flood test (issue 9): legitimate requests must still be served, with p99 latency within 2x the
# unloaded figure, while 1,000 idle connections are held open and a flood of unauthenticated
# requests (each one refused and, past the per-peer allowance, logged in aggregate) runs.
#
# On loopback, one machine: the records service, s62 (release build, durable RocksDB log), wrk.
#   1. unloaded: wrk -c$CONNS for $DURATION s, an officer viewing a person (logged, justified);
#   2. loaded:   the same, while a holder keeps $IDLE connections open and idle (reconnecting
#      any s62 closes) and a second wrk floods requests with no identity ($FLOOD_CONNS
#      connections, as fast as they are answered).
# Prints both p99s and their ratio, and from /metrics how many refusals were answered against
# how many denial entries were appended. Exit status 1 when the ratio exceeds 2.
#
# Usage: scripts/flood.sh [-d SECONDS] [-c CONNECTIONS] [-i IDLE] [-f FLOOD_CONNECTIONS]
# Needs: wrk (installed with apt-get if missing), python3, a Rust toolchain.
set -euo pipefail

DURATION=15
CONNS=8
IDLE=1000
FLOOD_CONNS=16
while getopts "d:c:i:f:" opt; do
  case "$opt" in
    d) DURATION="$OPTARG" ;;
    c) CONNS="$OPTARG" ;;
    i) IDLE="$OPTARG" ;;
    f) FLOOD_CONNS="$OPTARG" ;;
    *) echo "usage: $0 [-d seconds] [-c connections] [-i idle] [-f flood connections]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source scripts/env.sh

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk ..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends wrk >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --bin s62 >&2
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TMP="$(mktemp -d /tmp/s62-flood.XXXXXX)"
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
  echo "nothing listening on port $1" >&2; tail -n 20 "$TMP"/*.log >&2 || true; exit 1
}

UP_PORT=$(free_port); S62_PORT=$(free_port); ADMIN_PORT=$(free_port)
"$S62" records --listen "127.0.0.1:$UP_PORT" >"$TMP/records.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

"$S62" keygen --origin flood.s62.local/log --out "$TMP/keys" >/dev/null
cat >"$TMP/sidecar.toml" <<EOF
[log]
data_dir = "$TMP/log"
key_file = "$TMP/keys/log.key"
origin = "flood.s62.local/log"

[listen]
address = "127.0.0.1:$S62_PORT"

[upstream]
url = "http://127.0.0.1:$UP_PORT"

[identity]
sources = ["trusted_header"]
trusted_peers = ["127.0.0.0/8"]

[limits]
max_connections = 4096
# The defaults, written out: what the flood meets.
header_read_timeout_ms = 10000
idle_timeout_ms = 60000
denials_per_peer = 10
denial_window_ms = 10000
denial_delay_ms = 250

[routes]
strict = true

[[routes.rule]]
name = "person-read"
method = "GET"
path = "/people/{id}"
operation = "consultation"
subjects = ["path:id"]
returned_subjects = ["response:/id"]

[admin]
address = "127.0.0.1:$ADMIN_PORT"
EOF
RUST_LOG=warn "$S62" serve --config "$TMP/sidecar.toml" >"$TMP/s62.log" 2>&1 &
PIDS+=($!)
wait_port "$S62_PORT"

URL="http://127.0.0.1:$S62_PORT/people/P-1001"
OFFICER=(-H "x-s62-user: pc-4021" -H "x-s62-purpose: investigation" -H "x-s62-justification: flood test")

to_ms() {
  case "$1" in
    *us) awk -v v="${1%us}" 'BEGIN {printf "%.3f", v/1000}' ;;
    *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v}' ;;
    *s)  awk -v v="${1%s}" 'BEGIN {printf "%.3f", v*1000}' ;;
    *)   echo "$1" ;;
  esac
}
# Runs the officer's load; prints "req_per_s p50_ms p99_ms non2xx".
measure() {
  local out
  out="$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${OFFICER[@]}" "$URL")"
  echo "$out" >"$TMP/wrk-$1.txt"
  local rps p50 p99 bad
  rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  bad="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${bad:-0}"
}
metric() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'
}

wrk -t1 -c"$CONNS" -d3s "${OFFICER[@]}" "$URL" >/dev/null # warm-up
read -r U_RPS U_P50 U_P99 U_BAD < <(measure unloaded)

# 1,000 idle connections, kept at that number: a closed one is reopened at once.
cat >"$TMP/idle.py" <<'PY'
import socket, selectors, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
opened = reopened = 0
def connect():
    global opened
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    opened += 1
for _ in range(n):
    connect()
end = time.time() + seconds
while time.time() < end:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s); s.close(); connect(); reopened += 1
print(f"idle connections: {n} held, {reopened} reopened after s62 closed them")
PY
python3 "$TMP/idle.py" "$S62_PORT" "$IDLE" "$((DURATION + 10))" >"$TMP/idle.txt" &
IDLE_PID=$!
PIDS+=($IDLE_PID)
sleep 2
REFUSED_BEFORE=$(metric 's62_rejections_total{reason="no_identity"}')
DENIED_BEFORE=$(metric 's62_entries_appended_total{kind="denied"')
wrk -t1 -c"$FLOOD_CONNS" -d"$((DURATION + 4))s" "$URL" >"$TMP/wrk-flood.txt" &
FLOOD_PID=$!
PIDS+=($FLOOD_PID)
sleep 2
read -r L_RPS L_P50 L_P99 L_BAD < <(measure loaded)
wait "$FLOOD_PID" || true
wait "$IDLE_PID" || true
sleep 1
REFUSED=$(( $(metric 's62_rejections_total{reason="no_identity"}') - REFUSED_BEFORE ))
DENIED=$(( $(metric 's62_entries_appended_total{kind="denied"') - DENIED_BEFORE ))
FLOOD_RPS="$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk-flood.txt")"

RATIO="$(awk -v a="$L_P99" -v b="$U_P99" 'BEGIN {printf "%.2f", a/b}')"
echo
echo "s62 flood test: wrk -t1 -c$CONNS -d${DURATION}s GET /people/P-1001 as an officer, $(nproc) cores shared by everything"
printf '  %-9s %10s %9s %9s %8s\n' "" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf '  %-9s %10s %9s %9s %8s\n' unloaded "$U_RPS" "$U_P50" "$U_P99" "$U_BAD"
printf '  %-9s %10s %9s %9s %8s\n' loaded "$L_RPS" "$L_P50" "$L_P99" "$L_BAD"
echo "  loaded: $(cat "$TMP/idle.txt"); flood: $FLOOD_CONNS connections, $FLOOD_RPS refused req/s"
echo "  refusals answered during the flood: $REFUSED; denial entries appended: $DENIED"
echo "  p99 loaded / unloaded = $RATIO (must be <= 2)"
awk -v r="$RATIO" 'BEGIN {exit !(r <= 2.0)}'
