#!/usr/bin/env bash
# Run the offline demo job (sets itself up first): synthetic songs through every stage, a tiny tokenizer
# trained on the version that publishes, a second run that tokenizes every clip with it, a tiny DSLM trained
# on the tokenized version, the LDM's VAE and latent diffusion model, and the DSLM's evaluation per task, with the
# paper's audio tables.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/songcorpus run jobs/demo.toml "$@"
.venv/bin/songcorpus status out/demo
.venv/bin/songcorpus train jobs/demo.toml --only tokenizer   # a tiny BEST-RQ on the version just published
.venv/bin/songcorpus run jobs/demo.toml "$@"   # tokenize every clip with it: a new version with token arrays
.venv/bin/songcorpus train jobs/demo.toml --only dslm   # a tiny DSLM on the tokenized version
.venv/bin/songcorpus train jobs/demo.toml --only vae --only ldm   # tokens -> audio: the VAE, then the LDM
# token metrics per task, sampled tokens, and the paper's tables (every task generated, decoded and scored)
.venv/bin/songcorpus evaluate dslm/latest --root out/demo --audio
echo "open out/demo/report.html (the pipeline) and out/demo/evaluations/*/report.html (the DSLM and the paper's"
echo "tables, also in tables.md) in a browser"
