#!/usr/bin/env bash
# Train on every host of a multi-host TPU VM slice with the same `pogo train` entry point, or (with
# --node URL) make every host of the slice a PoGO miner of a chain node.
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a PROJECT=my-proj CONFIG=configs/gpt2-124m.toml \
#   OUT=/mnt/shared/runs/gpt2 ./scripts/launch_tpu_pod.sh [--set train.steps=5000 ...]
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a ./scripts/launch_tpu_pod.sh --node http://NODE:8700 --keys
#       prints each host's miner public key (made on first use in ~/pogo-miner/key.pem, never copied
#       off the host); register them with `pogo govern register --node URL --key gov.pem --member KEY
#       --role miner --name tpu-host-N`, then
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a ./scripts/launch_tpu_pod.sh --node http://NODE:8700 [--set ...]
#       starts `pogo mine --rounds 0` on every host in the background (log: ~/pogo-miner/mine.log).
#
# As miners the hosts do not form one JAX program: each host's process sees only its own chips
# (TPU_PROCESS_BOUNDS=1,1,1; CHIPS_BOUNDS is the host's chip grid, 2,2,1 for 4-chip v4/v5p hosts) and
# mines on its own with its own key, talking to the node over HTTP like any miner.
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
OUT="${OUT:-}"
REPO_URL="${REPO_URL:-}"          # git URL of pogo-jax; empty: copy this checkout with scp
REMOTE_DIR="${REMOTE_DIR:-pogo-jax}"
NODE=""
KEYS_ONLY=0
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node) NODE="$2"; shift 2 ;;
    --keys) KEYS_ONLY=1; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
EXTRA_ARGS=$(printf ' %q' "${ARGS[@]+"${ARGS[@]}"}")
CHIPS_BOUNDS="${CHIPS_BOUNDS:-2,2,1}"

gc() { gcloud compute tpus tpu-vm "$@" --zone="$ZONE" --project="$PROJECT"; }

if [ -n "$REPO_URL" ]; then
  gc ssh "$TPU_NAME" --worker=all --command="rm -rf $REMOTE_DIR && git clone -q $REPO_URL $REMOTE_DIR"
else
  tar czf /tmp/pogo-jax-src.tgz --exclude=.git --exclude=runs -C "$(dirname "$0")/.." .
  gc scp /tmp/pogo-jax-src.tgz "$TPU_NAME":/tmp/pogo-jax-src.tgz --worker=all
  gc ssh "$TPU_NAME" --worker=all --command="rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar xzf /tmp/pogo-jax-src.tgz -C $REMOTE_DIR"
fi

if [ -n "$NODE" ]; then
  # Miners: one independent `pogo mine` per host, each on its own chips with its own key.
  TPU_ENV="TPU_PROCESS_BOUNDS=1,1,1 TPU_CHIPS_PER_PROCESS_BOUNDS=$CHIPS_BOUNDS TPU_VISIBLE_CHIPS=0,1,2,3"
  gc ssh "$TPU_NAME" --worker=all --command="set -e; cd $REMOTE_DIR; \
    [ -x .venv/bin/pogo ] || (python3 -m venv .venv && .venv/bin/pip install -q -e '.[tpu]'); \
    mkdir -p ~/pogo-miner; [ -f ~/pogo-miner/key.pem ] || .venv/bin/pogo keygen --out ~/pogo-miner/key.pem >/dev/null; \
    echo \"\$(hostname) miner key: \$(.venv/bin/python -c 'from pogo_jax.spec.keys import load_private_pem, public_bytes; \
      import os; print(public_bytes(load_private_pem(os.path.expanduser(\"~/pogo-miner/key.pem\"))).hex())')\"; \
    if [ $KEYS_ONLY = 0 ]; then $TPU_ENV nohup .venv/bin/pogo mine --node $NODE --key ~/pogo-miner/key.pem \
      --workdir ~/pogo-miner --config $CONFIG --rounds 0 $EXTRA_ARGS > ~/pogo-miner/mine.log 2>&1 & fi"
  exit 0
fi

# Install (jax[tpu] extra) and train; the same command on every worker.
: "${OUT:?set OUT to a directory on a filesystem every host mounts (NFS, gcsfuse)}"
gc ssh "$TPU_NAME" --worker=all --command="set -e; cd $REMOTE_DIR; \
  python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[tpu]'; \
  POGO_DISTRIBUTED=1 pogo train --distributed --config $CONFIG --out $OUT $EXTRA_ARGS"
