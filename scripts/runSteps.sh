# Steps shared by the queue scripts (paperTable.sh, penaltySweep.sh; sourced, not run): each skips
# what is finished and continues what is not, so a queue of them is resumable as a whole.
MOPO=${MOPO:-node dist/pipeline/cli.js}  # the CLI (a test sets a stand-in)
mkdir -p runs

# halfcheetah-random as D4RL's generation script makes it (uniform random actions), where it is
# missing: a minute.
uniform_random_data() {
  mkdir -p data/datasets
  [ -f data/datasets/halfcheetah-uniform-random.parquet ] ||
    $MOPO collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out data/datasets/halfcheetah-uniform-random.parquet --quiet
}

# An ensemble, trained to early stopping (or continued); one thread each by default, so two train side by side
# (more work done on two cores than one training split over both).
# Waits while another process (a training started by hand, or another queue) holds the run's lock.
wait_unlocked() { # name
  local pid
  while [ -f "runs/$1/LOCK" ]; do
    pid=$(node -e 'try { console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid) } catch { console.log(0) }' "runs/$1/LOCK")
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 30
  done
}
# With ENSEMBLE_MAX_EPOCHS set, the training stops there (at once if it is past it) with each
# member's best weights: a time budget on a machine that will not be there for the hours early
# stopping would take.
# Flags after the worker count set the training on its start (a resumed run keeps its own config).
dynamics() { # name dataset [workers, default 1] [flags…]
  local name=$1 dataset=$2 workers=${3:-1}
  shift 2; [ $# -gt 0 ] && shift
  wait_unlocked "$name"
  [ -f "runs/$name/report.json" ] && return 0
  $MOPO train-dynamics --dataset "$dataset" --out "runs/$name" --workers "$workers" --resume ${ENSEMBLE_MAX_EPOCHS:+--max-epochs "$ENSEMBLE_MAX_EPOCHS"} "$@" >> "runs/$name.log" 2>&1
}
diagnose() { # name
  [ -f "runs/$1/diagnose-dynamics.json" ] && return 0
  $MOPO diagnose dynamics --run "runs/$1" > "runs/diagnose-$1.txt" 2>> "runs/$1.log"
}
# A MOPO run: started, or continued from its last checkpoint; done when summary.json says so.
mopo() { # name dataset dynamics [flags…]
  local name=$1 dataset=$2 dyn=$3
  shift 3
  wait_unlocked "$name"
  if [ -f "runs/$name/summary.json" ] && ! grep -q '"stoppedEarly": true' "runs/$name/summary.json"; then return 0; fi
  if [ -f "runs/$name/checkpoints/latest.json" ]; then
    $MOPO train --resume "runs/$name" >> "runs/$name.log" 2>&1
  else
    rm -rf "runs/$name"
    $MOPO train --dataset "$dataset" --dynamics "runs/$dyn" --out "runs/$name" "$@" >> "runs/$name.log" 2>&1
  fi
}
# The penalty diagnostic of a MOPO run (its last checkpoint's policy), once.
diagnose_penalty() { # name
  [ -f "runs/$1/diagnose-penalty.json" ] && return 0
  $MOPO diagnose penalty --run "runs/$1" > "runs/diagnose-penalty-$1.txt" 2>> "runs/$1.log"
}

# Runs carried across machines in git (data/carry/<name>): the machines here do not outlive a
# session, and the lead's runs take several. carry_save copies runs/<name> there without what is
# bulky and remade on resume (a MOPO checkpoint's model-buffer shards, hundreds of MB: the resumed
# run refills its model buffer; saved rollouts; the lock); carry_restore copies each carried run
# back where runs/<name> is missing, so the queue resumes it. Commit data/carry after carry_save.
CARRY=data/carry
carry_save() { # name…
  local name
  for name in "$@"; do
    [ -d "runs/$name" ] || { echo "carry: no runs/$name" >&2; return 1; }
    wait_unlocked "$name"
    rm -rf "$CARRY/$name.tmp" && mkdir -p "$CARRY" && cp -r "runs/$name" "$CARRY/$name.tmp" || return 1
    rm -rf "$CARRY/$name.tmp/LOCK" "$CARRY/$name.tmp/stages" "$CARRY/$name.tmp"/checkpoints/*/model-buffer
    rm -rf "$CARRY/$name" && mv "$CARRY/$name.tmp" "$CARRY/$name" || return 1
    echo "carried runs/$name → $CARRY/$name ($(du -sh "$CARRY/$name" | cut -f1))"
  done
}
carry_restore() {
  local d name
  for d in "$CARRY"/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    [ -e "runs/$name" ] && continue
    cp -r "$CARRY/$name" "runs/$name" && echo "restored runs/$name from $CARRY/$name"
  done
}
