#!/usr/bin/env bash
# Installs what the end-to-end SSO tests' identity providers need: SimpleSAMLphp and the PHP
# CLI from Debian, and oidc-provider from npm (into tests/peers/oidc/node_modules).
# Idempotent, silent on success, and a few milliseconds when everything is already there.
# Output of the installers is shown only when one of them fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
debs=(simplesamlphp php-cli php-xml)

# Parallel test processes may call this at once: one installs, the others wait.
exec 9<"${BASH_SOURCE[0]}"
flock 9

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
  echo "tests/peers/install.sh: $*" >&2
  if [[ -s "$log" ]]; then
    cat "$log" >&2
  fi
  exit 1
}

run() {
  "$@" >>"$log" 2>&1 || fail "failed: $*"
}

missing=()
for deb in "${debs[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$deb" 2>/dev/null || true)"
  if [[ "$status" != installed ]]; then
    missing+=("$deb")
  fi
done

if ((${#missing[@]})); then
  command -v apt-get >/dev/null || fail "apt-get not found; install ${missing[*]} yourself"
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || fail "not root and no sudo; install ${missing[*]} yourself"
    sudo=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The lock the tests' other Debian installs take (tests/debian.py): one apt-get at a time.
  exec 8>/tmp/gatehouse-tests-apt.lock
  flock 8
  run "${sudo[@]}" apt-get update
  run "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
  flock -u 8
fi

oidc="$here/oidc"
# npm writes node_modules/.package-lock.json after a complete install: missing (no install, or
# an interrupted one) or older than package.json / package-lock.json means (re)install.
stamp="$oidc/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$oidc/package.json" -nt "$stamp" || "$oidc/package-lock.json" -nt "$stamp" ]]; then
  command -v npm >/dev/null || fail "npm not found; install Node.js >= 20.19 with npm"
  cd "$oidc"
  if [[ -f package-lock.json ]]; then
    run npm ci --no-audit --no-fund --loglevel=error
  else
    run npm install --no-audit --no-fund --loglevel=error
  fi
fi
