#!/usr/bin/env bash
# Build the Python binding (crates/clvp-py) into its own virtual environment and run its pytest suite.
#
#   scripts/test-python.sh                    # the dev profile (dependencies at opt-level 3, as `cargo test`)
#   scripts/test-python.sh --profile release  # what `pip install ./crates/clvp-py` builds (for timing)
#
# Installs, pinned, what it needs (crates/clvp-py/requirements-test.txt: maturin, pytest, numpy, safetensors,
# soundfile) into target/pybind; needs python3 (3.9+) with venv and pip's index or wheel mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=$PWD/target/pybind
REQ=crates/clvp-py/requirements-test.txt
scripts/python-env.sh "$ENV" "$REQ" "$@"
"$ENV/bin/python" -m pytest -q crates/clvp-py/tests
