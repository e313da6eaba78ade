#!/usr/bin/env bash
# test.sh - everything CI checks: setup + build, typecheck (incl. tests), lint, format,
# then the whole vitest suite (unit, property, in-process and netns; netns needs root).
# Exits non-zero on the first failure; vitest's own summary is the last output.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "[test] tsc -p tsconfig.test.json"
npx tsc -p tsconfig.test.json
echo "[test] eslint"
npx eslint .
echo "[test] prettier --check"
npx prettier --check .
echo "[test] depcruise (layers: .dependency-cruiser.cjs)"
npx depcruise src
# bounded: a hung test must fail the run, not eat the CI budget
echo "[test] vitest: unit, property, in-process (files in parallel)"
timeout --kill-after=30 600 npx vitest run --project fast --fileParallelism --maxWorkers=2
echo "[test] vitest: netns (real daemons, one file at a time)"
exec timeout --kill-after=30 1200 npx vitest run --project netns
