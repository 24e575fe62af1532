#!/usr/bin/env bash
# Run the offline demo job (sets itself up first): synthetic songs through every stage, a tiny tokenizer
# trained on the version that publishes, and a second run that tokenizes every clip with it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/songcorpus run jobs/demo.toml "$@"
.venv/bin/songcorpus status out/demo
.venv/bin/songcorpus train jobs/demo.toml   # a tiny BEST-RQ tokenizer on the version just published
.venv/bin/songcorpus run jobs/demo.toml "$@"   # tokenize every clip with it: a new version with token arrays
echo "open out/demo/report.html in a browser for the plots"
