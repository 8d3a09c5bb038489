#!/usr/bin/env bash
# The main job: train on MovieLens 100k, compare with baselines, list the
# movies nearest to Toy Story and write the embedding map. Arguments go to
# `catembed train` (e.g. --data-dir PATH). A rerun replaces the job's own
# outputs (--overwrite).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
out="${OUT_DIR:-$root/outputs}"
mkdir -p "$out"
catembed train --dataset ml-100k --split u1 \
    --similar "Toy Story (1995)" \
    --save "$out/movielens-100k.keras" --overwrite \
    --plot "$out/embedding_map.png" "$@"
