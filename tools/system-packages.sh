#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's Chromium for the report's browser test.
# Installs only what is missing, and only where apt-get and root are available; elsewhere it
# says what to install and the browser test is skipped.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "Not installed (install them to run the browser test): ${missing[*]}" >&2
fi
