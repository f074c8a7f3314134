#!/usr/bin/env bash
# RocksDB's C++ is most of a first build (docs/building.md). librocksdb-sys can link a
# librocksdb.a built before instead of compiling it: ROCKSDB_LIB_DIR=<dir> ROCKSDB_STATIC=1.
# This script keeps such a library, built by this checkout, for other clones, CI jobs or
# image builds on machines of the same kind:
#
#   scripts/prebuilt-rocksdb.sh save [DIR]   copy target/release/.../librocksdb.a to DIR
#   eval "$(scripts/prebuilt-rocksdb.sh env [DIR])"   then build as usual: cargo build --release
#
# DIR defaults to ~/.cache/s62/rocksdb-<librocksdb-sys version>. The library must match what
# this Cargo.lock and Cargo.toml would build: the same librocksdb-sys version (RocksDB 11.8.1 for
# 0.19.0+11.8.1), the same compression features (LZ4) and a compatible C++ compiler. `save`
# writes a stamp of those next to it and `env` refuses a library whose stamp differs. Debian's
# librocksdb-dev (7.8) does not match and does not link.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "librocksdb-sys"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
[ -n "$version" ] || { echo "prebuilt-rocksdb: librocksdb-sys is not in Cargo.lock" >&2; exit 2; }
stamp() {
  echo "librocksdb-sys $version"
  grep -E '^rocksdb = ' Cargo.toml
  grep -A1 -E '^\[profile\.release\.package\.librocksdb-sys\]' Cargo.toml || true
  ${CXX:-g++} --version 2>/dev/null | head -n 1
}
dir="${2:-$HOME/.cache/s62/rocksdb-$version}"

case "${1:-}" in
  save)
    lib=$(ls -t target/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)
    [ -n "$lib" ] || { echo "prebuilt-rocksdb: no librocksdb.a under target/release; run cargo build --release first" >&2; exit 2; }
    mkdir -p "$dir"
    install -m 0644 "$lib" "$dir/librocksdb.a"
    stamp >"$dir/STAMP"
    echo "saved $lib ($(du -h "$dir/librocksdb.a" | cut -f1)) to $dir" >&2
    ;;
  env)
    [ -f "$dir/librocksdb.a" ] || { echo "prebuilt-rocksdb: no $dir/librocksdb.a; run: $0 save" >&2; exit 2; }
    if ! diff -q <(stamp) "$dir/STAMP" >/dev/null 2>&1; then
      echo "prebuilt-rocksdb: $dir was built for something else:" >&2
      diff <(stamp) "$dir/STAMP" >&2 || true
      exit 1
    fi
    printf 'export ROCKSDB_LIB_DIR=%q ROCKSDB_STATIC=1\n' "$dir"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
