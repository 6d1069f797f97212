#!/bin/bash
# Chromium, the browser the web front door's dashboard tests drive with Playwright (Debian's
# package: Playwright's own download host is not reachable from CI machines).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends chromium
fi
