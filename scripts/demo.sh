#!/usr/bin/env bash
# Run the offline demo job (sets itself up first): synthetic songs through every stage, a tiny tokenizer
# trained on the version that publishes, a second run that tokenizes every clip with it, a tiny DSLM trained
# on the tokenized version, and its evaluation per task.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/songcorpus run jobs/demo.toml "$@"
.venv/bin/songcorpus status out/demo
.venv/bin/songcorpus train jobs/demo.toml --only tokenizer   # a tiny BEST-RQ on the version just published
.venv/bin/songcorpus run jobs/demo.toml "$@"   # tokenize every clip with it: a new version with token arrays
.venv/bin/songcorpus train jobs/demo.toml --only dslm   # a tiny DSLM on the tokenized version
.venv/bin/songcorpus evaluate dslm/latest --root out/demo   # token metrics per task, sampled tokens, report
echo "open out/demo/report.html (the pipeline) and out/demo/evaluations/*/report.html (the DSLM) in a browser"
