#!/usr/bin/env bash
# The GPU checks of issue 21, as one script that fits in 8 minutes on one GPU:
#   1. experiment=ptb_medium trainer=gpu   (Zaremba medium; target test ppl <= 83, theirs 82.7)   ~5 min budget
#   2. the text comparison on GPU: cnn, rnn, fasttext on SST-2, seed 1, 5 epochs, then nnlab report     ~1.5 min
#   3. bench_ops.py device=cuda (ours there: the torch-primitive code of nnlab.ops, no C loops)       ~1 min
# Everything lands under OUT_DIR (default ./gpu_check_out): each run's directory with its metrics.json, and
# ptb_medium.json, text_report/summary.json (and .md), bench_ops_cuda.json, summary.json.
#
#   scripts/gpu_check.sh [OUT_DIR]              on a GPU machine
#   scripts/gpu_check.sh --dry-run [OUT_DIR]    on CPU: the same steps with trainer.max_epochs=1 and tiny limits
#   scripts/gpu_check.sh --print [OUT_DIR]      only print the commands
#
# Budgets are wall-clock limits per step (PTB_BUDGET_S, TEXT_BUDGET_S, BENCH_BUDGET_S); a step that runs out
# is recorded as such in summary.json and the script goes on, so the other numbers still come back.
set -uo pipefail

MODE=gpu
case "${1:-}" in
  --dry-run) MODE=dry; shift ;;
  --print) MODE=print; shift ;;
esac
OUT_DIR=$(realpath -m "${1:-gpu_check_out}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

if [ "$MODE" != dry ]; then  # --print shows the GPU commands
  PTB_BUDGET_S=${PTB_BUDGET_S:-300}
  TEXT_BUDGET_S=${TEXT_BUDGET_S:-90}
  BENCH_BUDGET_S=${BENCH_BUDGET_S:-60}
  TRAINER=(trainer=gpu)
  LIMITS=()
  TEXT_EPOCHS=5
  BENCH=(device=cuda threads=[1] min_run=0.2 rounds=1 allow_load=true)
else
  PTB_BUDGET_S=${PTB_BUDGET_S:-120}
  TEXT_BUDGET_S=${TEXT_BUDGET_S:-120}
  BENCH_BUDGET_S=${BENCH_BUDGET_S:-60}
  TRAINER=(trainer=cpu threads=1)
  # Tiny limits: the dry run checks that every step runs and writes its JSON, not the numbers.
  LIMITS=(+trainer.limit_train_batches=2 +trainer.limit_val_batches=1 +trainer.limit_test_batches=1)
  TEXT_EPOCHS=1
  BENCH=(device=cpu threads=[1] only=[max_pool2d] min_run=0.01 rounds=1 allow_load=true)
fi
COMMON=(logger=csv trainer.enable_progress_bar=false)

PTB_CMD=("$PY" "$ROOT/train.py" experiment=ptb_medium "${TRAINER[@]}" "${COMMON[@]}" "${LIMITS[@]}"
  hydra.run.dir="$OUT_DIR/ptb_medium")
[ "$MODE" != dry ] || PTB_CMD+=(trainer.max_epochs=1)
TEXT_CMD=("$PY" "$ROOT/train.py" -m model=cnn,rnn,fasttext data=sst2 seed=1 trainer.max_epochs=$TEXT_EPOCHS
  "${TRAINER[@]}" "${COMMON[@]}" "${LIMITS[@]}" hydra.sweep.dir="$OUT_DIR/text" hydra.sweep.subdir='${hydra.job.num}')
REPORT_CMD=("$PY" "$ROOT/scripts/report.py" "sweep_dir=$OUT_DIR/text" "by=[model,data]" percent=true throughput=true
  "out=$OUT_DIR/text_report")
BENCH_CMD=("$PY" "$ROOT/scripts/bench_ops.py" "${BENCH[@]}" "out=$OUT_DIR/bench_ops_cuda.json")

if [ "$MODE" = print ]; then
  echo "${PTB_CMD[*]}"
  echo "${TEXT_CMD[*]}"
  echo "${REPORT_CMD[*]}"
  echo "${BENCH_CMD[*]}"
  exit 0
fi

mkdir -p "$OUT_DIR"
if [ "$MODE" = gpu ]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device (use --dry-run on CPU)")' || exit 2
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT_DIR/gpu.txt" 2>&1 || true
fi

declare -A STATUS SECONDS_TAKEN
step() {  # step NAME BUDGET CMD...: run with a wall-clock limit, log to OUT_DIR/NAME.log, record rc and seconds
  local name=$1 budget=$2
  shift 2
  local t0=$SECONDS
  echo "== $name (budget ${budget}s): $*"
  timeout --signal=INT --kill-after=20 "$budget" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  STATUS[$name]=$rc
  SECONDS_TAKEN[$name]=$((SECONDS - t0))
  echo "   rc=$rc after ${SECONDS_TAKEN[$name]}s (log: $OUT_DIR/$name.log)"
}

step ptb_medium "$PTB_BUDGET_S" "${PTB_CMD[@]}"
step text "$TEXT_BUDGET_S" "${TEXT_CMD[@]}"
step text_report 60 "${REPORT_CMD[@]}"
step bench_ops "$BENCH_BUDGET_S" "${BENCH_CMD[@]}"

# ptb_medium.json: the run's test perplexity against the target; summary.json: every step's status.
"$PY" - "$OUT_DIR" "$MODE" \
  "${STATUS[ptb_medium]}" "${STATUS[text]}" "${STATUS[text_report]}" "${STATUS[bench_ops]}" \
  "${SECONDS_TAKEN[ptb_medium]}" "${SECONDS_TAKEN[text]}" "${SECONDS_TAKEN[text_report]}" "${SECONDS_TAKEN[bench_ops]}" <<'EOF'
import json, sys
from pathlib import Path

out, mode = Path(sys.argv[1]), sys.argv[2]
names = ["ptb_medium", "text", "text_report", "bench_ops"]
rcs, secs = [int(v) for v in sys.argv[3:7]], [int(v) for v in sys.argv[7:11]]
metrics = out / "ptb_medium" / "metrics.json"
ptb = {"target_test_ppl": 83.0, "zaremba_medium_test_ppl": 82.7, "metrics_json": str(metrics)}
if metrics.is_file():
    m = json.loads(metrics.read_text())
    flat = {k: v for k, v in m.items() if isinstance(v, (int, float))}
    flat.update({k: v for k, v in m.get("test", {}).items() if isinstance(v, (int, float))} if isinstance(m.get("test"), dict) else {})
    ppl = next((v for k, v in flat.items() if k.endswith("test/ppl")), None)
    ptb.update({"test_ppl": ppl, "meets_target": None if ppl is None else ppl <= 83.0})
(out / "ptb_medium.json").write_text(json.dumps(ptb, indent=2))
summary = {
    "mode": mode,
    "steps": {n: {"rc": rc, "seconds": s, "timed_out": rc in (124, 130, 137)} for n, rc, s in zip(names, rcs, secs)},
    "ptb_medium": ptb,
    "outputs": sorted(str(p.relative_to(out)) for p in out.glob("*.json")),
}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary["steps"]))
EOF
rc=0
for name in ptb_medium text text_report bench_ops; do
  [ "${STATUS[$name]}" = 0 ] || rc=1
done
exit $rc
