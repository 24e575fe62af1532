#!/usr/bin/env bash
# Lint and type-check (sets itself up first): ruff over the whole tree, mypy over the package, tests and
# benchmarks (rules and settings in pyproject.toml). Runs both, exits non-zero if either found anything.
# Extra arguments go to ruff, e.g. scripts/lint.sh --fix.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
status=0
echo "lint: ruff check"
.venv/bin/ruff check "$@" . || status=1
echo "lint: mypy"
.venv/bin/mypy || status=1
exit "$status"
