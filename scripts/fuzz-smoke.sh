#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short while (default 30 s each) from its committed seed
# corpus (fuzz/corpus/<target>), stopping at the first crash. Not part of .ci/run: measured
# 2026-12-02 on a fresh machine, installing cargo-fuzz and building the fuzz crate (nightly,
# sanitizer flags, no RocksDB) plus five 30-second runs took 16.7 minutes on 2 busy cores, which
# would take CI from ~21 to ~38 minutes with a warm ccache (~40 to ~57 cold) just before the
# cluster and browser suites arrive. Run before a release, or longer by hand:
#   scripts/fuzz-smoke.sh 600          # ten minutes per target
#   scripts/fuzz-smoke.sh 30 config    # one target
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if missing.
set -euo pipefail
SECONDS_EACH="${1:-30}"
shift || true
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
cargo +nightly fuzz build --release >&2
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  # A scratch copy: new inputs found in a smoke run are not committed by accident.
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/"
  echo "== $t: ${SECONDS_EACH}s" >&2
  status=0
  cargo +nightly fuzz run --release "$t" "$work" -- -max_total_time="$SECONDS_EACH" \
    -print_final_stats=1 >"$work.log" 2>&1 || status=$?
  grep -E "^#[0-9]+.*DONE|^stat::(number_of_executed_units|peak_rss_mb)|SUMMARY|panicked" "$work.log" >&2 || true
  rm -rf "$work" "$work.log"
  if [ "$status" -ne 0 ]; then
    echo "$t: crashed (artifacts in fuzz/artifacts/$t)" >&2
    exit 1
  fi
done
