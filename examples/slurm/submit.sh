#!/bin/sh
# Submit a training job to a Slurm cluster through carbonshift.
#
# carbonshift plans the job into the cluster's lowest-carbon window before its deadline;
# the agent on the login node (`carbonshift run --site gpu-cluster`, see README.md) hands
# it to Slurm with `sbatch --begin=<planned start>` and follows it with squeue/sacct.
#
#   ./submit.sh                       # uses `carbonshift` from PATH and your usual database
#   ZONE=FR GPUS=4 ./submit.sh
set -eu

SITE=${SITE:-gpu-cluster}
ZONE=${ZONE:-DE}            # the cluster's grid zone
SITE_GPUS=${SITE_GPUS:-8}   # GPUs the site has
GPUS=${GPUS:-4}             # GPUs this job needs
CS=${CARBONSHIFT:-carbonshift}

# 1. the site: once per cluster (re-running it updates the site)
$CS site add "$SITE" --zone "$ZONE" --executor slurm --gpus "$SITE_GPUS" --pue 1.2

# 2. the job: 6 h on 4 GPUs, finished within 24 h, may be paused and resumed
$CS submit --site "$SITE" --name llama-ft --gpus "$GPUS" --duration 6h --deadline 24h \
    --interruptible --json -- python train.py --config configs/llama.yaml > job.json
ID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' job.json)
echo "submitted job $ID to $SITE:"
$CS show "$ID"

# 3. the queue, with each job's planned window and expected saving
$CS queue
echo "follow it with: $CS wait $ID    (exits with the job's exit code)"
