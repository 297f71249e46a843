#!/bin/bash
# Carries runs across machines in git (scripts/runSteps.sh, carry_save and carry_restore).
#   bash scripts/carry.sh save <name>…   runs/<name> → data/carry/<name> (then commit data/carry)
#   bash scripts/carry.sh restore        data/carry/<name> → runs/<name>, where it is missing
# Stop a run first (SIGTERM: it ends at its epoch's end with a checkpoint); save waits for its lock.
set -u
cd "$(dirname "$0")/.."
source scripts/runSteps.sh
case "${1:-}" in
  save) shift; [ $# -gt 0 ] || { echo "usage: bash scripts/carry.sh save <run name>…" >&2; exit 2; }; carry_save "$@";;
  restore) carry_restore;;
  *) echo "usage: bash scripts/carry.sh save <run name>… | restore" >&2; exit 2;;
esac
