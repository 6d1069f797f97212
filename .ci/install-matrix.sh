#!/bin/bash
# Synapse, the Matrix homeserver the Matrix source's integration tests start. It lives in
# its own venv (.synapse-venv at the checkout's root): it pins its own Twisted, which must
# not meet the bot's. tests/sources/matrix_harness.py finds it there (or via
# BOTCORE_SYNAPSE_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BOTCORE_SYNAPSE_VENV:-.synapse-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import synapse' >/dev/null 2>&1; then
    echo "Synapse is installed in $venv."
    exit 0
fi
if command -v python3.11 >/dev/null 2>&1; then
    python=python3.11
else
    python=python3
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet matrix-synapse
"$venv/bin/python" -c 'import synapse; print("Synapse", synapse.__version__, "in '"$venv"'")'
