#!/bin/sh
# Submit the digits training to carbonshift as an interruptible job with a deadline (paused
# by checkpointing: SIGUSR1, it saves the epoch and exits, and is launched again), wait
# for it with a live line (planned start and countdown, then power, energy so far, grid
# intensity and the total projected from its epochs), then show where its energy and
# emissions went. Exits with the training's exit code.
#
# A daemon must be running (`carbonshift run`); RUN_DAEMON=1 starts one here that stops
# once the queue is empty. POLICY="--now" skips the carbon shifting.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CS=${CARBONSHIFT:-carbonshift}
PY=${PYTHON:-python3}
EPOCHS=${EPOCHS:-20}
POLICY=${POLICY:---deadline 12h}

# Nothing is written here: the job's checkpoints go to its run's own folder (train.py
# --checkpoint-dir, by default beside the run's logs), the daemon's log to $TMPDIR.
# shellcheck disable=SC2086  # POLICY is a list of flags
job=$($CS submit --name digits-mlp --duration "${DURATION:-10m}" $POLICY --interruptible --pause-mode checkpoint \
    --cwd "$here" --json -- "$PY" train.py --epochs "$EPOCHS")
ID=$(printf '%s' "$job" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
echo "submitted job $ID"
if [ "${RUN_DAEMON:-0}" = 1 ]; then
    log="${TMPDIR:-/tmp}/carbonshift-digits-daemon.$$.log"
    echo "daemon log: $log"
    $CS run --exit-when-idle > "$log" 2>&1 &
fi
code=0
$CS wait "$ID" || code=$?
$CS show "$ID"
exit "$code"
