# Sourced by the scripts: one build profile (release) for tests, clippy, benchmarks and the demo,
# and ccache for RocksDB's C++ build so a fresh clone on the same machine does not pay 15 minutes again.
if command -v ccache >/dev/null 2>&1; then
  export CC="ccache gcc" CXX="ccache g++"
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
  # Paths under the clone differ between clones; make them relative so the cache still hits.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
