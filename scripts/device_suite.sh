#!/usr/bin/env bash
# The one command a session runs on an NVIDIA H200 when one is lent:
#
#   bash scripts/device_suite.sh                  # on the GPU machine, under 8 minutes -> runs/device-suite/
#   bash scripts/device_suite.sh --dry-run        # the same steps, tiny sizes, cpu platform -> runs/device-suite-dry/
#   OUT=DIR bash scripts/device_suite.sh ...      # anywhere else (runs/ is ignored by git; nothing else is written)
#
# Steps, each under its own `timeout`, each writing JSON under $OUT (the log of all is $OUT/suite.log,
# the summary $OUT/suite.json):
#   1 train     scripts/bench_train.py --config gpt2-124m: tokens/s, MFU over the data-sheet peak
#               (H200 SXM dense bf16 989 TFLOP/s) and over a bf16 matmul measured in the same run
#   2 merkle    scripts/bench_merkle.py: leaf hashing GB/s of every lowering on 1 GiB of leaves beside a
#               device-to-device copy of the same bytes; commit time of 124M- and 1B-parameter states
#   3 pytest    pytest -m gpu with POGO_TEST_PLATFORMS=cuda,cpu (the files that carry the gpu marker)
#   4 gpu_block HOOK: "tiny block mined on the GPU, verified on CPU" (scripts/gpu_block_check.py make, if present)
#   5 spread    scripts/loss_spread.py --quick --accelerator: per-window losses of CPU-trained states on the
#               GPU beside the CPU's (the tolerance of the loss verdict, measured across backends)
#   6 bench     pogo bench --config small -> bench_cuda.json
# The device image has no network and no pip install -e: a carried wheel directory (.whl/) is installed
# into /tmp/site first, and everything runs with PYTHONPATH holding the repository root.
set -u -o pipefail
cd "$(dirname "$0")/.."
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; elif [[ -n "${1:-}" ]]; then echo "usage: $0 [--dry-run]" >&2; exit 2; fi
OUT="${OUT:-runs/device-suite$( ((DRY)) && echo -dry)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/suite.log"
STEPS="$OUT/steps.tsv"
PY="${PYTHON:-python3}"
: >"$LOG"
: >"$STEPS"

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
case ":${PYTHONPATH:-}:" in *":$PWD:"*) ;; *) export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" ;; esac
export PYTHONUNBUFFERED=1

if (( DRY )); then
  PLATFORM=cpu
  export JAX_PLATFORMS=cpu POGO_TEST_PLATFORMS=cpu POGO_DRY_RUN=1
  BUDGET=600
  TRAIN=(--config tiny --steps 2 --warmup 1 --matmul-size 256)
  MERKLE=(--quick --sizes tiny --leaves 256 --repeats 1 --unrolls 4)
  BENCH=(--config tiny --quick)
  SPREAD=(--quick --draws 500)
else
  PLATFORM=cuda
  export POGO_TEST_PLATFORMS=cuda,cpu
  BUDGET=470  # all steps together stay under 8 minutes, compiles included
  TRAIN=(--config gpt2-124m --steps 20 --warmup 3 --set data.path=)  # the byte corpus: same shapes and FLOPs
  MERKLE=(--sizes 124m,1b --leaves 262144 --repeats 3 --unrolls 4)  # 262144 leaves of 4 KiB = 1 GiB
  BENCH=(--config small)
  SPREAD=(--quick --accelerator)
fi
T0=$SECONDS

# step NAME CAP_SECONDS JSON CMD...: run CMD under `timeout` (CAP, or what is left of the budget)
step() {
  local name=$1 cap=$2 json=$3
  shift 3
  local left=$((BUDGET - (SECONDS - T0)))
  local secs=$((cap < left ? cap : left))
  if ((secs < 15)); then
    echo "=== $name: skipped, ${left}s of the ${BUDGET}s budget left" | tee -a "$LOG"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "skipped" 0 "$secs" "$json" >>"$STEPS"
    return 0
  fi
  echo "=== $name (timeout ${secs}s): $*" | tee -a "$LOG"
  local t=$SECONDS rc=0
  timeout --kill-after=10 "$secs" "$@" >>"$LOG" 2>&1 || rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t))s" | tee -a "$LOG"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t))" "$secs" "$json" >>"$STEPS"
}

CLI='from pogo_jax.cli import main; raise SystemExit(main())'

step train 120 "$OUT/train.json" "$PY" scripts/bench_train.py "${TRAIN[@]}" --out "$OUT/train.json"

step merkle 150 "$OUT/merkle_$([[ $PLATFORM == cuda ]] && echo gpu || echo cpu).json" \
  "$PY" scripts/bench_merkle.py "${MERKLE[@]}" --out "$OUT"

mapfile -t GPU_TESTS < <(grep -l -E 'pytest\.mark\.gpu' tests/test_*.py)
cat >"$OUT/pytest_json.py" <<'PYJSON'
"""pytest -m gpu FILES..., then its junit XML as JSON (exit 5, nothing selected, counts as success)."""
import json, subprocess, sys, xml.etree.ElementTree as ET
stem = sys.argv[1]
rc = subprocess.call([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                      f"--junitxml={stem}.xml", *sys.argv[2:]])
s = ET.parse(f"{stem}.xml").getroot()
s = s.find("testsuite") if s.tag == "testsuites" else s
n = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
json.dump({"returncode": rc, "tests": n["tests"], "passed": passed, "failed": n["failures"], "errors": n["errors"],
           "skipped": n["skipped"], "files": sys.argv[2:]}, open(f"{stem}.json", "w"), indent=1)
sys.exit(0 if rc in (0, 5) else rc)
PYJSON
step pytest 120 "$OUT/pytest_gpu.json" "$PY" "$OUT/pytest_json.py" "$OUT/pytest_gpu" "${GPU_TESTS[@]}"

# ---- HOOK: tiny block mined on the GPU, verified on CPU -------------------------------------------
# scripts/gpu_block_check.py is another engineer's; this step runs it only when it exists. Its interface
# (its docstring): `gpu_block_check.py make --out OUT/gpu_block.json` mines on jax's default backend,
# re-verifies on the CPU and writes the JSON with a tar beside it (POGO_DRY_RUN=1 in a dry run).
if [[ -f scripts/gpu_block_check.py ]]; then
  step gpu_block 120 "$OUT/gpu_block.json" "$PY" scripts/gpu_block_check.py make --out "$OUT/gpu_block.json"
else
  echo "=== gpu_block: skipped, scripts/gpu_block_check.py does not exist yet" | tee -a "$LOG"
  printf '%s\t%s\t%s\t%s\t%s\n' gpu_block absent 0 0 "$OUT/gpu_block.json" >>"$STEPS"
fi
# ---- end of HOOK ----------------------------------------------------------------------------------

step spread 90 "$OUT/loss_spread/loss_spread_quick.json" \
  env JAX_PLATFORMS=cpu "$PY" scripts/loss_spread.py "${SPREAD[@]}" --out "$OUT/loss_spread"

BENCH_DIR="$OUT/bench"
step bench 150 "$OUT/bench_$PLATFORM.json" bash -c '
  "$1" -c "$2" bench "${@:5}" --out "$3" && f=$(ls "$3"/bench_*.json | head -n 1) && mv "$f" "$4"' \
  _ "$PY" "$CLI" "$BENCH_DIR" "$OUT/bench_$PLATFORM.json" "${BENCH[@]}"

"$PY" - "$STEPS" "$OUT/suite.json" "$DRY" "$PLATFORM" "$((SECONDS - T0))" "$BUDGET" <<'EOF'
import json, sys
steps_file, out, dry, platform, total, budget = sys.argv[1:]
steps = []
for line in open(steps_file):
    name, rc, secs, limit, js = line.rstrip("\n").split("\t")
    status = rc if rc in ("skipped", "absent") else ("ok" if rc == "0" else "timeout" if rc in ("124", "137") else "failed")
    steps.append({"step": name, "status": status, "returncode": int(rc) if rc.lstrip("-").isdigit() else None,
                  "seconds": int(secs), "timeout_s": int(limit), "json": js})
json.dump({"dry_run": dry == "1", "platform": platform, "total_s": int(total), "budget_s": int(budget),
           "steps": steps}, open(out, "w"), indent=1)
bad = [s["step"] for s in steps if s["status"] not in ("ok", "absent")]
print(f"device suite: {len(steps) - len(bad)}/{len(steps)} steps ok in {total}s" + (f"; not ok: {bad}" if bad else ""))
sys.exit(1 if bad else 0)
EOF
