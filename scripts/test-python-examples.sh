#!/usr/bin/env bash
# The Ray Data and HF datasets examples (examples/python): builds the binding into its own virtual environment and
# runs examples/python/test_examples.py (40 generated clips and 2 broken ones, codes against the `clvp` command,
# reruns, datasets.map against Ray).
#
#   scripts/test-python-examples.sh            # extra arguments go to pytest
#
# Installs, pinned, what it needs (examples/python/requirements.txt: ray[data], pyarrow, datasets, pytest, maturin
# and their dependencies, ~700 MB) into target/pyexamples, made again only when that file changes; the `clvp`
# command is CLVP_BIN, else the workspace's debug build (built here when CLVP_BIN is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=$PWD/target/pyexamples
REQ=examples/python/requirements.txt
scripts/python-env.sh "$ENV" "$REQ"
if [ -z "${CLVP_BIN:-}" ]; then
  cargo build --quiet -p clvp-cli --bin clvp
fi
RAY_USAGE_STATS_ENABLED=0 "$ENV/bin/python" -m pytest -q examples/python/test_examples.py \
  examples/python/test_batch_readers.py "$@"
