#!/bin/bash
# The paper-table runs (README "MOPO's table, reproduced"): the halfcheetah ensembles still to train,
# with their diagnostics, then MOPO at the paper's settings on each task and λ = 0 on halfcheetah-random.
# Hours of work on two cores, so every step is resumable: run this script again after a kill (or in
# the next session) and it skips what is finished and continues what is not from its last
# checkpoint. Logs go to runs/<name>.log.
#
#   nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &
#
# The datasets come first (README "Datasets"): data/datasets/halfcheetah-{uniform-random,medium,medium-replay}.parquet.
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh

# A step that fails or is interrupted (Ctrl-C, exit 130) stops the script: nothing later starts.
D=data/datasets
# Two lines of work keep both cores busy. Line A: halfcheetah-random as D4RL's generation script
# makes it (uniform random actions; README "Datasets"), its ensemble on one thread, then MOPO at the
# paper's settings and λ = 0 on it. Line B: MOPO on medium-replay, then on medium, with the
# ensembles already trained. (halfcheetah-random made by a randomly initialized actor — the first
# random dataset — has its runs done or stopped: runs/mopo-hc-random-*; they are not resumed here.)
{ dynamics dyn-hc-uniform-random $D/halfcheetah-uniform-random.parquet && diagnose dyn-hc-uniform-random &&
  mopo mopo-hc-uniform-random-paper $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random &&
  mopo mopo-hc-uniform-random-lambda0 $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random --lambda 0; } &
{ for d in dyn-hc-medium-replay dyn-hc-medium; do [ -f "runs/$d/diagnose-dynamics.json" ] || exit 1; done
  mopo mopo-hc-medium-replay-paper $D/halfcheetah-medium-replay.parquet dyn-hc-medium-replay &&
  mopo mopo-hc-medium-paper $D/halfcheetah-medium.parquet dyn-hc-medium; } &
wait
echo "paper table: all runs finished"
