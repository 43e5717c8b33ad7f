#!/usr/bin/env bash
# Train on every host of a multi-host TPU VM slice with the same `pogo train` entry point.
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a PROJECT=my-proj CONFIG=configs/gpt2-124m.toml \
#   OUT=/mnt/shared/runs/gpt2 ./scripts/launch_tpu_pod.sh [--set train.steps=5000 ...]
#
# Every worker runs the same command (SPMD, multi-controller JAX). `pogo train --distributed`
# calls jax.distributed.initialize() with no arguments: on TPU VMs the coordinator address,
# process count and process id come from the TPU metadata server. OUT must be a directory on a
# filesystem every host mounts (Filestore/NFS, or a gcsfuse mount of a bucket): orbax writes each
# host's shards there; process 0 writes metrics.jsonl and loss.png.
# Needs: gcloud authenticated for PROJECT; the TPU VM created with a runtime that has Python >= 3.11.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE, e.g. us-east5-a}"
PROJECT="${PROJECT:-$(gcloud config get-value project 2>/dev/null)}"
CONFIG="${CONFIG:-configs/gpt2-124m.toml}"
OUT="${OUT:?set OUT to a directory on a filesystem every host mounts (NFS, gcsfuse)}"
REPO_URL="${REPO_URL:-}"          # git URL of pogo-jax; empty: copy this checkout with scp
REMOTE_DIR="${REMOTE_DIR:-pogo-jax}"
EXTRA_ARGS=$(printf ' %q' "$@")

gc() { gcloud compute tpus tpu-vm "$@" --zone="$ZONE" --project="$PROJECT"; }

if [ -n "$REPO_URL" ]; then
  gc ssh "$TPU_NAME" --worker=all --command="rm -rf $REMOTE_DIR && git clone -q $REPO_URL $REMOTE_DIR"
else
  tar czf /tmp/pogo-jax-src.tgz --exclude=.git --exclude=runs -C "$(dirname "$0")/.." .
  gc scp /tmp/pogo-jax-src.tgz "$TPU_NAME":/tmp/pogo-jax-src.tgz --worker=all
  gc ssh "$TPU_NAME" --worker=all --command="rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar xzf /tmp/pogo-jax-src.tgz -C $REMOTE_DIR"
fi

# Install (jax[tpu] extra) and train; the same command on every worker.
gc ssh "$TPU_NAME" --worker=all --command="set -e; cd $REMOTE_DIR; \
  python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[tpu]'; \
  POGO_DISTRIBUTED=1 pogo train --distributed --config $CONFIG --out $OUT $EXTRA_ARGS"
