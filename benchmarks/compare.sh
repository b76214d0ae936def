#!/usr/bin/env bash
# The benchmark tables of BENCHMARKS.md: `optuna-sosae compare` on digits (max-dim 64) and on
# the synthetic linear data (max-dim 32), SOSAE against full grid search and TPE (5 seeds).
#
#   benchmarks/compare.sh            # both data sets
#   benchmarks/compare.sh digits     # one of them
#
# Results go to benchmarks/out/: <data>.json (everything measured), <data>.txt (the table),
# <data>.html (the report with its figures) and compare.db (the studies, for optuna-dashboard).
set -euo pipefail

PYTHON=${PYTHON:-python}
OUT=${OUT:-benchmarks/out}
# One thread per process: on a small model PyTorch's second thread costs more than it gains,
# and on a shared 2-core machine it made training more than ten times slower.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

run() {
    local name=$1
    shift
    "$PYTHON" -m optuna_sosae.cli compare "$@" --baselines grid,tpe \
        --storage "sqlite:///$OUT/compare.db" --overwrite \
        --report "$OUT/$name.html" --json >"$OUT/$name.json"
    "$PYTHON" -c 'import json, sys; from optuna_sosae.cli import print_comparison; print_comparison(json.load(open(sys.argv[1])))' \
        "$OUT/$name.json" | tee "$OUT/$name.txt"
}

if [ $# -eq 0 ]; then
    set -- digits synthetic
fi
for data in "$@"; do
    case $data in
        digits) run digits --dataset digits --max-dim 64 ;;
        synthetic) run synthetic --dataset synthetic --max-dim 32 ;;
        *) echo "unknown data set: $data (digits or synthetic)" >&2; exit 2 ;;
    esac
done
