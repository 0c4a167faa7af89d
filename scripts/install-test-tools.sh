#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the test suite drives for real, only those missing. Without them `npm test`
# skips the tests that need them (printing why); under CI=true it fails instead. `.ci/run` and the GitHub workflow
# call this script, so the list lives here and nowhere else.
#
#   scripts/install-test-tools.sh          install what is missing (apt-get; via sudo when not root)
#   scripts/install-test-tools.sh --check  only list what is missing; exit 1 if anything is
set -euo pipefail

check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

# package: what the tests use it for
missing=()
has nginx || missing+=(nginx)                                          # nginx -t and a live nginx (stack-nginx)
has promtool && has prometheus || missing+=(prometheus)                # promtool checks and a live Prometheus
has prometheus-node-exporter || missing+=(prometheus-node-exporter)    # scraped by the live Prometheus
has docker-compose || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)  # compose config
has openssl || missing+=(openssl)                                      # the nginx test's self-signed certificate
has shellcheck || missing+=(shellcheck)                                # the deploy scripts
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)    # the console's browser tests
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)    # YAML of the stack files and workflows

if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: all present"
  exit 0
fi
echo "test tools missing: ${missing[*]}"
if $check_only; then exit 1; fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
# Under systemd the packages start their services (ports 80, 9090, 9100); the tests run their own on free ports.
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl stop nginx prometheus prometheus-node-exporter 2>/dev/null || true
fi
echo "test tools: installed ${missing[*]}"
