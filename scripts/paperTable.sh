#!/bin/bash
# The paper-table runs (README "MOPO's table, reproduced"): the three halfcheetah ensembles with
# their diagnostics, then MOPO at the paper's settings on each task and λ = 0 on halfcheetah-random.
# Hours of work on two cores, so every step is resumable: run this script again after a kill (or in
# the next session) and it skips what is finished and continues what is not from its last
# checkpoint. Logs go to runs/<name>.log.
#
#   nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &
#
# The datasets come first (README "Datasets"): data/datasets/halfcheetah-{random,medium,medium-replay}.parquet.
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh

# A step that fails or is interrupted (Ctrl-C, exit 130) stops the script: nothing later starts.
D=data/datasets
# Two lines of work keep both cores busy: each trains an ensemble on one core, then goes on to the
# next ensemble or a MOPO run (two threads), whichever line finishes first, so no core sits idle
# while the other line's ensemble is still training. λ = 0 on random runs beside the paper run, as
# early as it can: the pair says whether the penalty is what sets the random score.
{ dynamics dyn-hc-random $D/halfcheetah-random.parquet && diagnose dyn-hc-random &&
  mopo mopo-hc-random-paper $D/halfcheetah-random.parquet dyn-hc-random; } &
{ dynamics dyn-hc-medium $D/halfcheetah-medium.parquet && diagnose dyn-hc-medium &&
  dynamics dyn-hc-medium-replay $D/halfcheetah-medium-replay.parquet && diagnose dyn-hc-medium-replay &&
  mopo mopo-hc-random-lambda0 $D/halfcheetah-random.parquet dyn-hc-random --lambda 0; } &
wait
for d in dyn-hc-random dyn-hc-medium-replay dyn-hc-medium; do [ -f "runs/$d/diagnose-dynamics.json" ] || exit 1; done

mopo mopo-hc-random-paper $D/halfcheetah-random.parquet dyn-hc-random || exit 1
mopo mopo-hc-random-lambda0 $D/halfcheetah-random.parquet dyn-hc-random --lambda 0 || exit 1
mopo mopo-hc-medium-replay-paper $D/halfcheetah-medium-replay.parquet dyn-hc-medium-replay || exit 1
mopo mopo-hc-medium-paper $D/halfcheetah-medium.parquet dyn-hc-medium || exit 1
echo "paper table: all runs finished"
