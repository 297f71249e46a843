#!/bin/bash
# The paper-table runs (README "MOPO's table, reproduced"): the halfcheetah ensembles still to train,
# with their diagnostics, then MOPO at the paper's settings on each task and λ = 0 on halfcheetah-random.
# Hours of work on two cores, so every step is resumable: run this script again after a kill (or in
# the next session) and it skips what is finished and continues what is not from its last
# checkpoint. Logs go to runs/<name>.log.
#
#   nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &
#   ENSEMBLE_MAX_EPOCHS=28 nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &   # ensemble budget
#
# The datasets come first (README "Datasets"): data/datasets/halfcheetah-{uniform-random,medium,medium-replay}.parquet.
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh

# A step that fails or is interrupted (Ctrl-C, exit 130) stops the script: nothing later starts.
D=data/datasets
# halfcheetah-random as D4RL's generation script makes it (uniform random actions; README
# "Datasets") first: its ensemble on both cores (two worker threads), then two lines of work, one a
# core: MOPO at the paper's settings on it, then on medium-replay; λ = 0 on it, then MOPO on medium.
# (halfcheetah-random made by a randomly initialized actor — the first random dataset — has its runs
# done or stopped: runs/mopo-hc-random-*; they are not resumed here.)
# On a fresh machine the dataset is made first (half a minute to a minute). The medium tasks follow
# only where their ensembles are trained (README "Results": 2.2 and 9.2 hours).
[ -f $D/halfcheetah-uniform-random.parquet ] || $MOPO collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out $D/halfcheetah-uniform-random.parquet --quiet || exit 1
# Its ensemble is trained with the official code's loss (raw targets, NLL averaged over dimensions:
# train-dynamics' defaults since the runs on dyn-hc-uniform-random, normalized targets and a summed
# NLL, stayed at 24; README "Results").
dynamics dyn-hc-uniform-random-official $D/halfcheetah-uniform-random.parquet 2 && diagnose dyn-hc-uniform-random-official || exit 1
trained() { [ -f "runs/$1/diagnose-dynamics.json" ]; }
{ mopo mopo-hc-uniform-random-official $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-official &&
  { ! trained dyn-hc-medium-replay || mopo mopo-hc-medium-replay-paper $D/halfcheetah-medium-replay.parquet dyn-hc-medium-replay; }; } &
a=$!
{ mopo mopo-hc-uniform-random-official-lambda0 $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-official --lambda 0 &&
  { ! trained dyn-hc-medium || mopo mopo-hc-medium-paper $D/halfcheetah-medium.parquet dyn-hc-medium; }; } &
b=$!
wait $a; ra=$?
wait $b; rb=$?
[ $ra = 0 ] && [ $rb = 0 ] && echo "paper table: all runs finished"
