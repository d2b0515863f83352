#!/usr/bin/env bash
# Example Slurm job: srpipe on several machines with torchrun's c10d rendezvous. One torchrun per
# node starts one process per GPU; the first node of the allocation hosts the rendezvous. Adjust
# the #SBATCH lines, the environment and the command to your cluster; submit with
#   sbatch scripts/slurm-multinode.sh
# Inference (make-pairs, upscale): every process takes its share of the files; training (sr-train,
# degrade-train): DDP over all GPUs of all nodes (batch stays the global batch).
#SBATCH --job-name=srpipe
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
set -euo pipefail

SRPIPE_ENV=${SRPIPE_ENV:-.venv}            # a venv with srpipe installed, on a shared file system
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${PORT:-29500}

# Inputs and outputs must be on a file system every node sees (each rank writes its own files).
srun --kill-on-bad-exit=1 "$SRPIPE_ENV/bin/torchrun" \
    --nnodes "$SLURM_NNODES" --nproc-per-node "$GPUS_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$HEAD:$PORT" --rdzv-id "$SLURM_JOB_ID" \
    -m srpipe upscale --model runs/sr/gan.safetensors --input photos/ --out upscaled/
# the same for the other commands, e.g.
#   -m srpipe make-pairs --model runs/phone-x4 --hr photos/div2k --out pairs/phone-x4
#   -m srpipe sr-train --pairs pairs/phone-x4 --out runs/sr-x4
