#!/bin/bash
# The paper-table runs (README "Results"): for each halfcheetah task, its dataset where it is
# missing, its ensemble trained as the official code trains it (each member on its bootstrap
# sample, truncated-normal initial weights, stopped after 6 epochs in a row without a > 1 %
# improvement: its `_epochs_since_update > 5`) on both cores, the ensemble's diagnostic, then MOPO
# at the paper's settings on it for 1,000 epochs. halfcheetah-random (uniform actions, D4RL's
# recipe) also gets λ = 0 (plain MBPO, the issue's contrast) and seeds 1 and 2 (the paper's figure
# is a mean over seeds; the reference's results script, mopo/scripts/d4rl_results.py, prints the
# best seed's) and OfflineRL-Kit's recipe, before the other tasks: its score is what the issue asks
# first; after medium-replay, the one change of that recipe that may carry its gain; then medium;
# last, a seed on an ensemble of its own, as the paper's runs each trained one. One step at a
# time: each uses both cores (the ensemble's two workers, or the learner and its rollout worker).
# Hours of work, and a session's end kills it: run it again at the next session's start and it
# skips what is finished and continues the rest from its last checkpoint. On a new machine it makes
# the datasets again and continues from the runs carried in git (data/carry, scripts/carry.sh),
# else starts them over. A run another process holds (one started by hand) is waited for. Logs go
# to runs/<name>.log. A step that fails or is interrupted stops the script: nothing later starts.
#
#   nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &
#   ENSEMBLE_MAX_EPOCHS=28 nohup bash scripts/paperTable.sh > runs/paper-table.log 2>&1 &   # ensemble budget
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh
D=data/datasets
OFFICIAL=(--resample bootstrap --init truncated-normal --patience 6)

# halfcheetah-medium from the committed medium policy (a minute); halfcheetah-medium-replay is the
# replay buffer of the SAC run that made that policy. That run is made again on the wasm kernels
# (MOPO_NATIVE_KERNELS=0), the engine the policy was trained on: the same seed then gives the same
# run, while the native gemm, which sums in another order, gives another (on 2026-12-07 it had not
# reached 4,000 by 55,000 steps, where the committed run stopped at 4,243). Its policy must equal the
# committed one, or the buffer is not that policy's and the script stops. 25–45 minutes on one
# core; `mopo sac` has no resume, so a stopped one starts over.
medium_data() {
  [ -f $D/halfcheetah-medium.parquet ] ||
    $MOPO collect --env halfcheetah --policy data/policies/halfcheetah-medium --noise --steps 1000000 --seed 0 --out $D/halfcheetah-medium.parquet --quiet
}
medium_replay_data() {
  [ -f $D/halfcheetah-medium-replay.parquet ] && return 0
  if [ ! -f runs/halfcheetah-medium/replay.parquet ]; then
    rm -rf runs/halfcheetah-medium
    MOPO_NATIVE_KERNELS=0 $MOPO sac --env halfcheetah --steps 1000000 --seed 0 --stop-at-return 4000 --save-replay --out runs/halfcheetah-medium --quiet >> runs/halfcheetah-medium.log 2>&1 || return 1
  fi
  local f
  for f in data/policies/halfcheetah-medium/*.f32; do
    if ! cmp -s "$f" "runs/halfcheetah-medium/policy/$(basename "$f")"; then
      echo "paperTable: runs/halfcheetah-medium/policy differs from the committed $f: its replay buffer is not the medium policy's training data, so it is not used as halfcheetah-medium-replay (see runs/halfcheetah-medium.log)" >&2
      return 1
    fi
  done
  cp runs/halfcheetah-medium/replay.parquet $D/halfcheetah-medium-replay.parquet.tmp && mv $D/halfcheetah-medium-replay.parquet.tmp $D/halfcheetah-medium-replay.parquet
}
# A task's ensemble and its diagnostic (flags after the dataset, such as --seed, go to the training).
ensemble() { # name dataset [flags…]
  dynamics "$1" "$2" 2 "${OFFICIAL[@]}" "${@:3}" && diagnose "$1"
}

carry_restore
UR=$D/halfcheetah-uniform-random.parquet
uniform_random_data || exit 1
ensemble dyn-hc-uniform-random-patience $UR || exit 1
mopo mopo-hcur-patience $UR dyn-hc-uniform-random-patience || exit 1
mopo mopo-hcur-patience-lambda0 $UR dyn-hc-uniform-random-patience --lambda 0 || exit 1
mopo mopo-hcur-patience-seed1 $UR dyn-hc-uniform-random-patience --seed 1 || exit 1
mopo mopo-hcur-patience-seed2 $UR dyn-hc-uniform-random-patience --seed 2 || exit 1

# OfflineRL-Kit's MOPO recipe (its run_example/run_mopo.py), whose higher figure on D4RL v2 the
# issue cites, on ensemble 0: 3,000 epochs, the actor's learning rate 1e-4 annealed towards 0 by a
# cosine over them, α's 1e-4, the entropy target −|A|; h 5 and λ 0.5 as the paper's. Not the
# paper's settings: whether this MOPO reaches, on this data, what a second reference
# implementation reports with its own recipe. About three times a paper run.
mopo mopo-hcur-patience-kit $UR dyn-hc-uniform-random-patience --epochs 3000 --actor-lr 1e-4 --actor-lr-schedule cosine --alpha-lr 1e-4 --target-entropy -6 || exit 1

MR=$D/halfcheetah-medium-replay.parquet
medium_replay_data || exit 1
ensemble dyn-hc-medium-replay-patience $MR || exit 1
mopo mopo-hcmr-patience $MR dyn-hc-medium-replay-patience || exit 1

# The kit run is above 35 from epoch 299 where the paper's settings stay near 31
# (docs/experiments.md): of its three changes, the actor's learning rate alone (1e-4, constant; the
# entropy target −3 and α's rate as the paper preset), 1,000 epochs. After medium-replay, which the
# issue asks for: this one only says which change carries the gain.
mopo mopo-hcur-patience-actorlr $UR dyn-hc-uniform-random-patience --actor-lr 1e-4 || exit 1

M=$D/halfcheetah-medium.parquet
medium_data || exit 1
ensemble dyn-hc-medium-patience $M || exit 1
mopo mopo-hcm-patience $M dyn-hc-medium-patience || exit 1

# Last, halfcheetah-random as the paper's seeds were run: the official mopo.py trains its model at the
# start of every run, so each seed has its own ensemble, where seeds 0-2 above share one. An
# ensemble from seed 1 and MOPO's seed 1 on it: against mopo-hcur-patience-seed1 (the same SAC
# seed, ensemble 0), what the ensemble's draw alone moves.
ensemble dyn-hc-uniform-random-patience-seed1 $UR --seed 1 || exit 1
mopo mopo-hcur-patience-ens1-seed1 $UR dyn-hc-uniform-random-patience-seed1 --seed 1 || exit 1

echo "paper table: all runs finished"
