#!/usr/bin/env bash
# Multi-node GPU training under Slurm: one process per node, all local GPUs per process.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/gpu_slurm.sh train experiments/configs/shapes_small.py /shared/runs/x
#
# Coordinator address, process count and process id come from Slurm's environment and are passed to
# jax.distributed.initialize() as JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, which
# streamdit_jax.parallel.initialize_distributed reads (experiments call it with --distributed).
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
set -euo pipefail
if [[ $# -lt 3 ]]; then sed -n '2,8p' "$0"; exit 2; fi
JOB=$1; CONFIG=$2; WORKDIR=$3; shift 3
case "$JOB" in train|distill) ;; *) echo "error: job must be train or distill, got '$JOB'" >&2; exit 2;; esac
: "${SLURM_JOB_NODELIST:?run under sbatch/srun (SLURM_JOB_NODELIST is not set)}"
COORD_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export JAX_COORDINATOR_ADDRESS="${COORD_HOST}:${COORD_PORT:-12345}"
export JAX_NUM_PROCESSES=${SLURM_NNODES}
export STREAMDIT_DISTRIBUTED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
# JAX_PROCESS_ID is per task: srun sets SLURM_PROCID for each.
srun --ntasks="$SLURM_NNODES" --ntasks-per-node=1 bash -c \
  "JAX_PROCESS_ID=\$SLURM_PROCID exec $PY -m experiments.$JOB --config=$CONFIG --workdir=$WORKDIR --distributed $(printf '%q ' "$@")"
