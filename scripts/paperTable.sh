#!/bin/bash
# The paper-table runs (README "MOPO's table, reproduced"): the halfcheetah datasets and ensembles
# still to make, with their diagnostics, then MOPO at the paper's settings on each task and λ = 0 on
# halfcheetah-random.
# Hours of work on two cores, so every step is resumable: run this script again after a kill (or in
# the next session) and it skips what is finished and continues what is not from its last
# checkpoint. Logs go to runs/<name>.log.
#
#   nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &
#   ENSEMBLE_MAX_EPOCHS=28 nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &   # ensemble budget
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh

# A step that fails or is interrupted (Ctrl-C, exit 130) stops the script: nothing later starts.
D=data/datasets
# The datasets first (README "Datasets"), each made where it is missing: halfcheetah-random as D4RL's
# generation script makes it (uniform random actions) and halfcheetah-medium from the committed
# medium policy, a minute or two each; halfcheetah-medium-replay is the replay buffer of the SAC run
# that made that policy (about 40 minutes on one core; `mopo sac` has no resume, so a stopped one
# starts over). (halfcheetah-random made by a randomly initialized actor — the first random
# dataset — has its runs done or stopped: runs/mopo-hc-random-*; they are not resumed here.)
uniform_random_data || exit 1
[ -f $D/halfcheetah-medium.parquet ] || $MOPO collect --env halfcheetah --policy data/policies/halfcheetah-medium --noise --steps 1000000 --seed 0 --out $D/halfcheetah-medium.parquet --quiet || exit 1
medium_replay_data() {
  [ -f $D/halfcheetah-medium-replay.parquet ] && return 0
  if [ ! -f runs/halfcheetah-medium/replay.parquet ]; then
    rm -rf runs/halfcheetah-medium
    $MOPO sac --env halfcheetah --steps 1000000 --seed 0 --stop-at-return 4000 --save-replay --out runs/halfcheetah-medium --quiet >> runs/halfcheetah-medium.log 2>&1 || return 1
  fi
  cp runs/halfcheetah-medium/replay.parquet $D/halfcheetah-medium-replay.parquet.tmp && mv $D/halfcheetah-medium-replay.parquet.tmp $D/halfcheetah-medium-replay.parquet
}
# Then the ensembles, with the official code's loss (raw targets, NLL averaged over dimensions:
# train-dynamics' defaults since the runs on dyn-hc-uniform-random, normalized targets and a summed
# NLL, stayed at 24; README "Results"), one a core: uniform-random's on one; the medium-replay data,
# its ensemble (about 20 s an epoch on one core) and medium's (hours) on the other. MOPO starts when
# both are done.
{ medium_replay_data && dynamics dyn-hc-medium-replay $D/halfcheetah-medium-replay.parquet && diagnose dyn-hc-medium-replay &&
  dynamics dyn-hc-medium $D/halfcheetah-medium.parquet && diagnose dyn-hc-medium; } &
m=$!
dynamics dyn-hc-uniform-random-official $D/halfcheetah-uniform-random.parquet && diagnose dyn-hc-uniform-random-official || exit 1
wait $m || exit 1
# Then two lines of MOPO, one a core: the paper's settings on uniform-random, then on medium-replay;
# λ = 0 on uniform-random, then the paper's settings on medium.
{ mopo mopo-hc-uniform-random-official $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-official &&
  mopo mopo-hc-medium-replay-paper $D/halfcheetah-medium-replay.parquet dyn-hc-medium-replay; } &
a=$!
{ mopo mopo-hc-uniform-random-official-lambda0 $D/halfcheetah-uniform-random.parquet dyn-hc-uniform-random-official --lambda 0 &&
  mopo mopo-hc-medium-paper $D/halfcheetah-medium.parquet dyn-hc-medium; } &
b=$!
wait $a; ra=$?
wait $b; rb=$?
[ $ra = 0 ] && [ $rb = 0 ] && echo "paper table: all runs finished"
