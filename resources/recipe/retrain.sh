#!/usr/bin/env bash
# Re-trains and re-evaluates the reference model from scratch on a CUDA host (about 9 minutes on one H100).
#   resources/recipe/retrain.sh [DEBDIR] [WORKDIR]
# DEBDIR holds the Debian text packages (.deb) listed in resources/model/README.md. Outputs go to
# WORKDIR (default /tmp/hs_refmodel_run): model/ (the Hugging Face folder), eval/ (summary.json,
# reference tables, eval sets), parity/ (transformers fixtures); install them with install.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
debs=${1:-.tdata}
work=${2:-/tmp/hs_refmodel_run}
budget=${TRAIN_SECONDS:-300}
mkdir -p "$work"
# SNAPSHOT_TO=DIR tars each stage's output there as soon as it exists (a device run keeps what finished).
snap() { if [ -n "${SNAPSHOT_TO:-}" ]; then tar czf "$SNAPSHOT_TO/$1.tgz" -C "$work" "${@:2}" || true; fi; }
export PYTHONUNBUFFERED=1
timeout 400 python3 "$here/train.py" --debs "$debs" --out "$work/model" --work "$work/tmp" --time-budget "$budget"
snap model model
timeout "${EVAL_TIMEOUT:-130}" python3 "$here/evaluate.py" --model "$work/model" --debs "$debs" --out "$work/eval" \
  --work "$work/tmp" || echo "evaluate.py stopped early (exit $?): see eval/summary.json"
snap eval eval
timeout 60 python3 "$here/parity.py" --model "$work/model" --out "$work/parity" \
  --passkey "$work/eval/reference/passkey.jsonl" --report "$work/parity-report.json" || echo "parity.py failed"
snap parity parity parity-report.json
