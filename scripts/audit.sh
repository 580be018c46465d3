#!/usr/bin/env bash
# Audit the pinned runtime dependencies for known vulnerabilities (needs the advisory service: PyPI or OSV).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv /tmp/sign2sound-audit
/tmp/sign2sound-audit/bin/pip install -q pip-audit
/tmp/sign2sound-audit/bin/pip-audit -r requirements.txt --disable-pip --no-deps "$@"
