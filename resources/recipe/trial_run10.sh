#!/usr/bin/env bash
# Trial run 10 (docs/reference-model.md): Guo et al.'s trigger copy inside real training text
# (train.py --text-triggers), from scratch on run 9's data, in ONE device command that ends within END_BY
# seconds (default 570; the device allows 600):
#   bash resources/recipe/trial_run10.sh .tdata-dev [WORKDIR]     # device run carrying .tdata-dev (36 MB)
# .tdata-dev is made by `resources/recipe/fetch-debs.sh .tdata-dev --more-compact`.
# 1. train.py: tokenizer + about 410 s of training; --deadline 450 (seconds after train.py's start, data
#    preparation included: 39 s in run 9) cuts it, and its 420 s schedule is then at 98% or more, so the
#    learning rate ends within 2% of its floor (annealed, unlike a segment of a longer schedule).
# 2. evaluate.py's quick sections in the time left (passkey, sinks, repeat, perplexity, choices, retrieval;
#    about 70 s with its set-up; no masking or secondary sinks); summary.json is written after each section,
#    so a cut keeps what finished.
# Leaves in $OUT (default WORKDIR/out; at most 8 files of 16 MiB come back from a device run):
# run10-model.tgz (model/ with training_log.json, tarred as soon as it exists), run10-eval.tgz (eval/), and
# unpacked training_log.json, summary.json, train.log and eval.log.
# TRAIN_FLAGS adds or overrides train.py options (the later of two equal options wins), e.g.
# TRAIN_FLAGS="--text-triggers 0.05" for another rate; EVAL_FLAGS adds evaluate.py options. CPU smoke test:
# TRAIN_FLAGS="--debug" EVAL_FLAGS="--debug" bash resources/recipe/trial_run10.sh .tdata-dev /tmp/r10
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
debs=${1:-.tdata-dev}
work=${2:-/tmp/hs_run10}
out=${OUT:-$work/out}
end_by=${END_BY:-570}
mkdir -p "$work" "$out"
export PYTHONUNBUFFERED=1
# shellcheck disable=SC2054  # "1024,2048" is one argument
flags=(--heads 16 --kv-heads 4 --rope-theta 500000 --lr 3e-3 --wd 0.1 --drop-head 0.1 --steps 1000000 --workers 14
  --more-text --short-frac 0.3 --short-lens 1024,2048 --probe-every 500 --text-triggers 0.02 --trigger-kinds 4)
read -ra extra <<<"${TRAIN_FLAGS:-}"
flags+=("${extra[@]}")
read -ra eval_flags <<<"${EVAL_FLAGS:-}"

# The full log goes to $OUT; the device's output tail gets the data lines, the probes and the end.
set +e
timeout 490 python3 "$here/train.py" --debs "$debs" --out "$work/model" --work "$work/tmp" "${flags[@]}" \
  --time-budget 420 --total-seconds 420 --deadline 450 2>&1 | tee "$out/train.log" |
  grep --line-buffered -E '^(data|more text|text triggers|model|trained)|sink_heads|Error|error|Traceback'
rc=${PIPESTATUS[0]}
set -e
if [ ! -f "$work/model/training_log.json" ]; then
  echo "train.py failed (exit $rc) at ${SECONDS}s; the end of train.log:"
  tail -n 25 "$out/train.log"
  exit 1
fi
[ "$rc" = 0 ] || echo "train.py exited $rc after saving the model (at ${SECONDS}s)"
cp "$work/model/training_log.json" "$out/training_log.json"
tar czf "$out/run10-model.tgz" -C "$work" model
echo "training done, model tarred at ${SECONDS}s"

left=$((end_by - SECONDS - 10)) # 10 s for the last tar and copies
if [ "$left" -lt 30 ]; then
  echo "no time left for evaluate.py (${left}s)"
  exit 0
fi
timeout "$left" python3 "$here/evaluate.py" --model "$work/model" --debs "$debs" --out "$work/eval" \
  --work "$work/tmp" --sections passkey,sinks,repeat,perplexity,choices,retrieval "${eval_flags[@]}" \
  >"$out/eval.log" 2>&1 ||
  echo "evaluate.py stopped early (exit $?, limit ${left}s): summary.json holds the sections that finished"
grep -E '^\[' "$out/eval.log" || true
if [ -d "$work/eval" ]; then
  tar czf "$out/run10-eval.tgz" -C "$work" eval
  if [ -f "$work/eval/summary.json" ]; then cp "$work/eval/summary.json" "$out/summary.json"; fi
fi
python3 - "$out" <<'EOF' || true
import json, os, sys
out = sys.argv[1]
log = json.load(open(os.path.join(out, "training_log.json")))
print("training:", {k: log.get(k) for k in ("steps", "train_seconds", "schedule_seconds", "finished", "tokens_seen",
                                            "text_trigger_ids")}, "last lr", log["log"][-1]["lr"])
path = os.path.join(out, "summary.json")
if os.path.exists(path):
    s = json.load(open(path))
    m = s.get("sink_mass")
    if m:
        top = sorted(((v, f"L{l}H{h}") for l, row in enumerate(m) if l for h, v in enumerate(row)), reverse=True)[:8]
        print("sinks:", s["sink_heads_after_layer0"], "largest", top)
    print({k: s.get(k) for k in ("heldout_ppl", "train_sample_ppl", "passkey_accuracy", "classification_accuracy",
                                 "multiple_choice_accuracy", "retrieval_heads_ge_0.5", "timings_s", "errors")})
EOF
echo "done at ${SECONDS}s"
