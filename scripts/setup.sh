#!/usr/bin/env bash
# Creates .venv (once) with keras-catembed and every extra installed.
# Source it: `source scripts/setup.sh`. Set VENV to use another folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
stamp="$venv/.keras-catembed-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # The CPU build of torch; a plain `torch` would pull in CUDA.
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet \
        -e "$root[tensorflow,jax,tuner,plot,ranking,fast-csv,test,docs,dev]"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
