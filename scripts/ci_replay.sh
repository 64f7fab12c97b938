#!/usr/bin/env bash
# Replays what CI does on a change: reproduce the pipeline, then print the params and
# metrics that differ from a base revision, as Markdown (CI appends it to the job summary).
#
#   bash scripts/ci_replay.sh [BASE]      # BASE: a branch, tag or commit; default main
set -euo pipefail

base="${1:-main}"
if ! git rev-parse --verify --quiet "${base}^{commit}" >/dev/null; then
    echo "note: base revision '${base}' not found; comparing with HEAD" >&2
    base=HEAD
fi

dvc repro >&2

echo "## Params changed against \`${base}\`"
echo
dvc params diff "${base}" --md
echo
echo "## Metrics against \`${base}\`"
echo
dvc metrics diff "${base}" --md
