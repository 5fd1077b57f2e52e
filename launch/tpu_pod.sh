#!/usr/bin/env bash
# Train or distill on a Cloud TPU pod slice: every worker installs the project and runs the same command.
#
#   launch/tpu_pod.sh NAME ZONE train   experiments/configs/shapes_small.py gs://BUCKET/runs/small [--config.x=y ...]
#   launch/tpu_pod.sh NAME ZONE distill experiments/configs/distill_shapes.py gs://BUCKET/runs/distill --teacher=...
#
# The workdir must be one place every worker sees: gs:// (orbax and tfds write there) or a shared filesystem mounted
# at the same path on all workers. A worker-local path works only on a single-host slice: process 0 alone builds the
# dataset and orbax coordinates one checkpoint directory, so the other workers would find neither.
# jax.distributed.initialize() is called on every worker (--distributed): on TPU it needs no arguments.
set -euo pipefail
if [[ $# -lt 5 ]]; then
  sed -n '2,11p' "$0"; exit 2
fi
NAME=$1; ZONE=$2; JOB=$3; CONFIG=$4; WORKDIR=$5; shift 5
case "$JOB" in train|distill) ;; *) echo "error: job must be train or distill, got '$JOB'" >&2; exit 2;; esac
REPO_URL=${REPO_URL:-$(git config --get remote.origin.url || true)}
REF=${REF:-$(git rev-parse HEAD)}
[[ -n "$REPO_URL" ]] || { echo "error: set REPO_URL (no git remote found)" >&2; exit 2; }
[[ "$WORKDIR" == gs://* ]] || echo "note: WORKDIR '$WORKDIR' is not gs://; on a multi-host slice it must be a" \
  "filesystem shared by all workers at the same path" >&2
EXTRA=$(printf ' %q' "$@")
# XLA flags TPU jobs usually want: overlap collectives with compute, async all-gather/reduce-scatter for FSDP.
LIBTPU_INIT_ARGS=${LIBTPU_INIT_ARGS:-"--xla_tpu_enable_latency_hiding_scheduler=true --xla_enable_async_all_gather=true --xla_enable_async_reduce_scatter=true"}
REMOTE=$(cat <<CMD
set -euo pipefail
if [[ ! -d ~/streamdit_jax ]]; then git clone -q $REPO_URL ~/streamdit_jax; fi
cd ~/streamdit_jax && git fetch -q origin && git checkout -q $REF
python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".[tpu]"
export LIBTPU_INIT_ARGS="$LIBTPU_INIT_ARGS" STREAMDIT_DISTRIBUTED=1
.venv/bin/python -m experiments.$JOB --config=$CONFIG --workdir=$WORKDIR --distributed$EXTRA
CMD
)
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$REMOTE"
