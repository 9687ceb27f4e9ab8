#!/usr/bin/env bash
# Build the separate virtual environment in which the tests run the *real* openpi-client.
#
# Why separate: openpi-client (PyPI) pins numpy<2 and needs dm-tree, while embodia runs on numpy 2,
# so the two cannot share .venv. tests/serving/test_openpi_compat.py runs a small client script in
# this venv against an embodia server and skips (saying why) when the venv is absent. CI calls this
# script before `make test` so the compatibility test really runs there.
#
# Idempotent: a venv that already imports the pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${OPENPI_CLIENT_VENV:-.cache/openpi-client-venv}"
VERSION="${OPENPI_CLIENT_VERSION:-0.1.2}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
import openpi_client.websocket_client_policy  # noqa: F401
sys.exit(0 if version("openpi-client") == sys.argv[1] else 1)
PY
    echo "openpi-client $VERSION already in $VENV"
    exit 0
fi

# Anything else there (an interrupted build, another version) is rebuilt from scratch; the check
# above imports the package, so a half-built venv is never mistaken for a working one.
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
# typing_extensions: websocket_client_policy imports it but openpi-client does not declare it.
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openpi-client==$VERSION" typing_extensions
"$VENV/bin/python" -c "import numpy, openpi_client.websocket_client_policy; print('openpi-client $VERSION ready in $VENV, numpy', numpy.__version__)"
