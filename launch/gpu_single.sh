#!/usr/bin/env bash
# Train, distill or stream on one GPU machine (one process, all its local GPUs in the mesh).
#
#   launch/gpu_single.sh train experiments/configs/shapes_small.py /runs/small [--config.x=y ...]
#   launch/gpu_single.sh benchmark_buffer_step --configs=streamdit_4b --param_dtype=bfloat16 --attention_impl=cudnn
set -euo pipefail
if [[ $# -lt 1 ]]; then sed -n '2,5p' "$0"; exit 2; fi
JOB=$1; shift
cd "$(dirname "$0")/.."
# Let XLA take most of the GPU memory up front; latency-hiding scheduler for overlapping collectives.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
case "$JOB" in
  train|distill)
    [[ $# -ge 2 ]] || { echo "error: $JOB needs CONFIG WORKDIR" >&2; exit 2; }
    CONFIG=$1; WORKDIR=$2; shift 2
    exec "$PY" -m "experiments.$JOB" --config="$CONFIG" --workdir="$WORKDIR" "$@" ;;
  *)
    exec "$PY" -m "experiments.$JOB" "$@" ;;
esac
