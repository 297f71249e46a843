#!/bin/bash
# The penalty experiment (README "Which uncertainty tracks the real model error?"): on
# halfcheetah-random (uniform actions, data/datasets/halfcheetah-uniform-random.parquet) and
# halfcheetah-medium-replay, MOPO with each penalty at three λ, then the
# diagnostic on each penalty's best run, then the table. Needs the paper runs first
# (scripts/paperTable.sh): their ensembles are used, and their penalty diagnostic sets each
# penalty's λ scale — λ such that the penalty's mean on the paper run's states equals the paper
# λ × max-aleatoric's mean, times ½, 1 and 2 — so the three estimators are compared at matched
# strength. Runs are short of the paper's 1,000 epochs (a small sweep): 20 on medium-replay, whose
# paper run reaches the data's policy by epoch 19, and 30 on uniform-random, whose curve climbs for
# longer; SWEEP_EPOCHS sets both. SWEEP_TASKS picks the tasks (default both: medium-replay, then
# uniform-random). Resumable like paperTable.sh.
#
#   nohup bash scripts/penaltySweep.sh > runs/penalty-sweep.log 2>&1 &
#   SWEEP_TASKS=uniform-random nohup bash scripts/penaltySweep.sh > runs/penalty-sweep.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh
D=data/datasets

# λ for `penalty` at multiplier m, from the paper run's diagnostic (3 significant digits).
lambda_for() { # paper-run penalty m
  node -e '
    const [run, p, m] = process.argv.slice(1);
    const d = JSON.parse(require("fs").readFileSync(`runs/${run}/diagnose-penalty.json`, "utf8"));
    const e = d.overall.estimators;
    const x = d.lambda * (e["max-aleatoric/all"].mean / e[`${p}/all`].mean) * Number(m);
    console.log(Number(x.toPrecision(3)));' "$@"
}

sweep() { # task paper-run dynamics epochs
  local task=$1 paper=$2 dyn=$3 epochs=$4
  diagnose_penalty "$paper" || exit 1
  for p in max-aleatoric disagreement ensemble-variance; do
    for m in 0.5 1 2; do
      mopo "sweep-$task-$p-x$m" "$D/halfcheetah-$task.parquet" "$dyn" --penalty "$p" --lambda "$(lambda_for "$paper" "$p" "$m")" --epochs "$epochs" || exit 1
    done
  done
}

for task in ${SWEEP_TASKS:-medium-replay uniform-random}; do
  case $task in
    medium-replay) sweep medium-replay mopo-hcmr-patience dyn-hc-medium-replay-patience "${SWEEP_EPOCHS:-20}";;
    uniform-random) sweep uniform-random mopo-hcur-patience dyn-hc-uniform-random-patience "${SWEEP_EPOCHS:-30}";;
    *) echo "SWEEP_TASKS: unknown task '$task' (medium-replay, uniform-random)" >&2; exit 2;;
  esac
done

# The diagnostic on each penalty's best run, then the table.
for best in $(node dist/scripts/penaltyTable.js runs/sweep-*/ --json | node -e 'for (const r of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(require("path").basename(r.best.run))'); do
  diagnose_penalty "$best" || exit 1
done
node dist/scripts/penaltyTable.js runs/sweep-*/ --svg runs/penalty-sweep.svg | tee runs/penalty-table.md
