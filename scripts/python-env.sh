#!/usr/bin/env bash
# Shared by scripts/test-python.sh and scripts/test-python-examples.sh: make (or keep) the virtual environment ENV
# from the pinned requirements file REQ — made again only when REQ changed — and build the `clvp` module into it
# with `maturin develop` (maturin is among the pins), sharing the workspace's target/.
#
#   scripts/python-env.sh ENV REQ [maturin develop options]   # default: --profile=dev
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENV=$1
REQ=$2
shift 2
if [ ! -x "$ENV/bin/python" ] || ! cmp -s "$REQ" "$ENV/requirements.txt"; then
  rm -rf "$ENV"
  python3 -m venv "$ENV"
  "$ENV/bin/python" -m pip install --quiet --no-deps -r "$REQ"
  cp "$REQ" "$ENV/requirements.txt"
fi
(
  cd crates/clvp-py
  VIRTUAL_ENV=$ENV CARGO_TARGET_DIR=$ROOT/target PATH=$ENV/bin:$PATH "$ENV/bin/maturin" develop --quiet "${@:---profile=dev}"
)
