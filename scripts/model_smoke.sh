#!/usr/bin/env bash
# Everything a user does, on one embedded model, through the CLI (issue: second model): every method trains
# and is scored, a batched K-prompt sweep, the rank views (spectrum, truncation), a PEFT export scored by plain
# PEFT against the same dequantized base, and the peak memory of a classification and a generation run (/usr/bin/time's
# max RSS, so the 262k-vocabulary answer scoring is measured, not assumed). Short settings: it checks that each
# step works on the model, it measures no accuracy.
#   bash scripts/model_smoke.sh [model]        # default gemma3-270m; writes to a temporary LOPT_HOME
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
MODEL=${1:-gemma3-270m}
export LOPT_HOME=$(mktemp -d) LOPT_MODEL_CACHE=${LOPT_MODEL_CACHE:-$ROOT/.cache/models} HF_HUB_OFFLINE=1
trap 'rm -rf "$LOPT_HOME"' EXIT
cd "$ROOT"
SHORT="--n 10 --r 2 --steps 2 --batch-size 4 --eval-size 16 --eval-every 0"
echo "# $MODEL on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(date -u +%FT%TZ)"
run() {  # one CLI call: its max RSS and wall time on stderr's last line, its JSON on stdout
  /usr/bin/time -f "TIME %M KB max RSS, %e s" "$PY" -m lopt_core "$@" 2> "$LOPT_HOME/err.txt"
  local rc=$?
  grep "^TIME" "$LOPT_HOME/err.txt" | sed 's/^TIME //' >&2
  [ $rc -eq 0 ] || { tail -5 "$LOPT_HOME/err.txt" >&2; echo "FAILED ($rc): $*" >&2; }
  return $rc
}
fields='import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(r["method"], r["state"], "trainable", r["trainable_params"], "score", r["accuracy"], "zero-shot", r["zero_shot_accuracy"], r["precision"], "fast path", r["fast_path"])'
for m in $("$PY" -m lopt_core methods --json | "$PY" -c "import json,sys; print(' '.join(f['name'] for f in json.load(sys.stdin)))"); do
  echo "## train $m"
  run train --model "$MODEL" --task sst2 --method "$m" $SHORT --json | tee "$LOPT_HOME/$m.json" | "$PY" -c "$fields"
done
echo "## generation: train lopt1 on arithmetic (answer tokens scored, greedy decoding)"
run train --model "$MODEL" --task arithmetic --method lopt1 $SHORT --json | "$PY" -c "$fields"
echo "## a batched sweep: prompt tuning, LoPT-1, ULPT in one group"
run sweep --model "$MODEL" --task sst2 --methods prompt_tuning,lopt1,ulpt $SHORT --seeds 0 | tail -3
rid=$("$PY" -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['run_id'])" "$LOPT_HOME/lopt1.json")
echo "## rank views of $rid"
run spectrum --run "$rid" --json | "$PY" -c "import json,sys; s=json.load(sys.stdin)[0]; print({k: v for k, v in s.items() if not isinstance(v, list)})"
run truncate --run "$rid" --ranks 1,2 --eval-size 16 --json | tail -1
echo "## PEFT export of $rid, scored by plain PEFT against the dequantized base"
run export --run "$rid" --out "$LOPT_HOME/adapter" | tail -1
base=$("$PY" -c "from lopt_core.lm.models import embedded_folder; print(embedded_folder('$MODEL'))" 2>/dev/null)
"$PY" - "$base" "$LOPT_HOME/adapter" <<'EOF'
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
pm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32), sys.argv[2]).eval()
with torch.no_grad():
    out = pm.generate(**tok("Review: a warm, funny film. Sentiment:", return_tensors="pt"), max_new_tokens=3, do_sample=False)
print("plain PEFT loads it and writes:", repr(tok.decode(out[0, -3:])))
EOF
