#!/usr/bin/env bash
# Run the test suite (sets itself up first). Extra arguments go to pytest, e.g. -k ledger.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
