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
MOPO="node dist/pipeline/cli.js"
mkdir -p runs

# An ensemble, trained to early stopping (or continued); one thread each, so two train side by side
# (more work done on two cores than one training split over both).
dynamics() { # name dataset
  [ -f "runs/$1/report.json" ] && return 0
  $MOPO train-dynamics --dataset "$2" --out "runs/$1" --workers 1 --resume >> "runs/$1.log" 2>&1
}
diagnose() { # name
  [ -f "runs/$1/diagnose-dynamics.json" ] && return 0
  $MOPO diagnose dynamics --run "runs/$1" > "runs/diagnose-$1.txt" 2>> "runs/$1.log"
}
# A MOPO run: started, or continued from its last checkpoint; done when summary.json says so.
mopo() { # name dataset dynamics [flags…]
  local name=$1 dataset=$2 dyn=$3
  shift 3
  if [ -f "runs/$name/summary.json" ] && ! grep -q '"stoppedEarly": true' "runs/$name/summary.json"; then return 0; fi
  if [ -f "runs/$name/checkpoints/latest.json" ]; then
    $MOPO train --resume "runs/$name" >> "runs/$name.log" 2>&1
  else
    rm -rf "runs/$name"
    $MOPO train --dataset "$dataset" --dynamics "runs/$dyn" --out "runs/$name" "$@" >> "runs/$name.log" 2>&1
  fi
}

# A step that fails or is interrupted (Ctrl-C, exit 130) stops the script: nothing later starts.
D=data/datasets
{ dynamics dyn-hc-random $D/halfcheetah-random.parquet && diagnose dyn-hc-random; } &
{ dynamics dyn-hc-medium $D/halfcheetah-medium.parquet && diagnose dyn-hc-medium; } &
wait
[ -f runs/dyn-hc-random/diagnose-dynamics.json ] && [ -f runs/dyn-hc-medium/diagnose-dynamics.json ] || exit 1
{ dynamics dyn-hc-medium-replay $D/halfcheetah-medium-replay.parquet && diagnose dyn-hc-medium-replay; } || exit 1

mopo mopo-hc-random-paper $D/halfcheetah-random.parquet dyn-hc-random || exit 1
mopo mopo-hc-random-lambda0 $D/halfcheetah-random.parquet dyn-hc-random --lambda 0 || exit 1
mopo mopo-hc-medium-replay-paper $D/halfcheetah-medium-replay.parquet dyn-hc-medium-replay || exit 1
mopo mopo-hc-medium-paper $D/halfcheetah-medium.parquet dyn-hc-medium || exit 1
echo "paper table: all runs finished"
