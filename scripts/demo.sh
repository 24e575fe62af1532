#!/usr/bin/env bash
# Run the offline demo job (sets itself up first): synthetic songs through every stage.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/songcorpus run jobs/demo.toml "$@"
.venv/bin/songcorpus status out/demo
.venv/bin/songcorpus train jobs/demo.toml   # a tiny BEST-RQ tokenizer on the version just published
echo "open out/demo/report.html in a browser for the plots"
