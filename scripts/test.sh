#!/usr/bin/env bash
# The full test suite: lint, tests on each Keras backend, docs build.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slow"`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/setup.sh
ruff check .
ruff format --check .
for backend in tensorflow jax torch; do
    echo "=== pytest on the $backend backend"
    KERAS_BACKEND="$backend" python -m pytest tests "$@"
done
mkdocs build --strict --site-dir "$(mktemp -d)"
