#!/bin/bash
# The remaining lead on halfcheetah-random (README "Results"): the uniform-random ensemble trained as
# the official code trains it (each member on its bootstrap sample, truncated-normal initial weights,
# stopped after 6 epochs in a row without a > 1 % improvement: its `_epochs_since_update > 5`)
# to early stopping, on both cores (about 50 s an epoch with the native gemm, 100+ epochs), its
# diagnostic, then MOPO at the paper's settings on it (1,000 epochs, about 8–11 s each), then the
# same with λ = 0 (plain MBPO) on it, the issue's contrast.
# Hours of work, and a session's end kills it: run it again at the next session's start and it
# continues each step from its last checkpoint. On a new machine it makes the dataset again (a
# minute) and continues from what was carried in git (scripts/carry.sh), else starts over. A training
# started by hand on the same run directory is waited for.
#
#   nohup bash scripts/patienceLead.sh > runs/patience-lead.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh
D=data/datasets

carry_restore
uniform_random_data || exit 1
dynamics dyn-hc-uniform-random-patience $D/halfcheetah-uniform-random.parquet 2 --resample bootstrap --init truncated-normal --patience 6 || exit 1
diagnose dyn-hc-uniform-random-patience || exit 1
mopo mopo-hcur-patience $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-patience || exit 1
mopo mopo-hcur-patience-lambda0 $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-patience --lambda 0 && echo "patience lead: finished"
