#!/usr/bin/env bash
# System packages the tests need, from Debian's archive: the PostgreSQL server binaries (initdb,
# pg_ctl) for the throwaway test cluster, and Chromium for the workbench's browser test (driven by
# playwright with executablePath=/usr/bin/chromium; no browser is ever downloaded). Installs only
# what is missing.
set -euo pipefail

need=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
if ! command -v runuser >/dev/null 2>&1; then
  need+=(util-linux)
fi
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
