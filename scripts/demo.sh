#!/usr/bin/env bash
# The demo: installs what it needs, builds s62 and runs `s62 demo` on a local folder (./s62-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --release --quiet
exec target/release/s62 demo "$@"
