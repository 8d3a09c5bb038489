#!/usr/bin/env bash
# The full test suite: lint, type check, tests on each Keras backend, docs
# build. Any failing step fails the script (set -e).
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slow"`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/setup.sh
ruff check .
ruff format --check .
# Type check (configuration in pyproject.toml: strict on the package, a few
# modules relaxed for now).
mypy
# One pytest worker per core (pytest-xdist), each test file on one worker
# so that a file's module fixtures are built once. Backend-independent tests
# (marker `one_backend`, see tests/conftest.py) run on torch only, the
# fastest backend here; export KERAS_CATEMBED_ONE_BACKEND= (empty) to run
# them on every backend.
export KERAS_CATEMBED_ONE_BACKEND="${KERAS_CATEMBED_ONE_BACKEND-torch}"
for backend in tensorflow jax torch; do
    echo "=== pytest on the $backend backend"
    KERAS_BACKEND="$backend" python -m pytest tests -n auto --dist loadfile "$@"
done
mkdocs build --strict --site-dir "$(mktemp -d)"
