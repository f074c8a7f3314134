#!/usr/bin/env bash
# Installs the system packages building and testing s62 needs on Debian/Ubuntu, only those missing:
# libclang-dev (bindgen for RocksDB's bindings), g++ (RocksDB's C++), protobuf-compiler (protoc for
# the gRPC code), ccache (so RocksDB's 15-minute build is paid once per machine), fuse3 and
# python3-fusepy (the power-loss test's file system, scripts/lossyfs.py), rsyslog (a real syslog
# collector for tests/alert_delivery.rs and tests/alerts_misuse.rs; the tests start their own
# rsyslogd on a loopback port, not the system one), nats-server (a real 3-node JetStream cluster
# for tests/replicate_cluster.rs and tests/hub_cluster.rs; the tests start their own nodes on
# loopback ports, never the system service), and for the console's browser test
# (tests/console_browser.rs): chromium and chromium-driver (headless Chromium and its WebDriver),
# python3-selenium (drives it; Debian's package, used by /usr/bin/python3), libnss3-tools
# (certutil and pk12util put an auditor's client certificate in the browser's NSS database) and
# openssl (makes the PKCS#12 file).
set -euo pipefail
need=()
for pkg in libclang-dev g++ protobuf-compiler ccache fuse3 python3-fusepy rsyslog nats-server \
  chromium chromium-driver python3-selenium libnss3-tools openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
