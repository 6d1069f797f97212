#!/bin/bash
# Prosody, the XMPP server the XMPP source's integration tests start (as the prosody user).
set -euo pipefail
if ! command -v prosody >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends prosody
fi
# The Debian package starts a system-wide server on 5222; the tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prosody 2>/dev/null; then
    systemctl stop prosody || true
fi
id prosody >/dev/null
