#!/bin/sh
# The two sites of the cluster example, stored in the shared database (run once, by an admin,
# with CARBONSHIFT_DB set). `carbonshift site list` shows them; every agent reads them there.
set -eu

# The GPU cluster in Germany, run by Slurm: 8 GPUs the planner may fill, PUE of its room.
carbonshift site add gpu-slurm --zone DE --executor slurm --gpus 8 --pue 1.3

# A workstation in France that runs jobs itself: 2 GPUs, 16 cores.
carbonshift site add ws-fr --zone FR --executor local --gpus 2 --cpus 16 --pue 1.0

carbonshift site list
