#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test (unit, integration, crash,
# and a smoke run of each benchmark) in the one build profile the project uses (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo test --release --all-targets "$@"
