#!/bin/bash
# InspIRCd 3 and Atheme services, the IRCv3 network the IRC source's integration tests
# start themselves (tests/sources/ircv3_harness.py) on free loopback ports.
set -euo pipefail
if ! command -v inspircd >/dev/null 2>&1 || ! command -v atheme-services >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends inspircd atheme-services
fi
# The Debian packages may start system-wide daemons; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
    for service in inspircd atheme-services; do
        if systemctl is-active --quiet "$service" 2>/dev/null; then
            systemctl stop "$service" || true
        fi
    done
fi
command -v inspircd >/dev/null
command -v atheme-services >/dev/null
