#!/bin/bash
# Reproduction spot-check of the reference sweep: its recorded command, cut to 3 steps and 64 evaluation
# sentences, on the commit that produced assets/reference/sst2-rank-sweep.json (default ef825ae) and on the
# working tree. Final losses and accuracies must be identical (same seeds, CPU, 2 torch threads).
#   bash scripts/repro_reference.sh [COMMIT]
set -e
ROOT=$(git rev-parse --show-toplevel)
OLD=$(mktemp -d)/old
git -C "$ROOT" worktree add -q "$OLD" "${1:-ef825ae}"
trap 'git -C "$ROOT" worktree remove --force "$OLD"' EXIT
for tree in "$OLD" "$ROOT"; do
  home=$(mktemp -d)
  (cd "$tree" && LOPT_HOME=$home LOPT_MODEL_CACHE="$ROOT/.cache/models" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 \
    "$ROOT/.venv/bin/python" -m lopt_core sweep --task sst2 --methods prompt_tuning,lopt1,lopt2,ulpt --n 20 \
    --r 1,2,5,10 --seeds 0 --steps 3 --batch-size 8 --eval-size 64 --eval-every 0 --json 2>/dev/null) \
    | "$ROOT/.venv/bin/python" -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(json.dumps([(r['method'], r['r'], r['accuracy'], r['final_loss']) for r in d['runs']]))" > "$home/out.json"
  outs+=("$home/out.json")
done
"$ROOT/.venv/bin/python" - "${outs[@]}" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print("identical" if a == b else "DIFFERENT")
for x, y in zip(a, b):
    print(x, "" if x == y else f"  vs {y}")
PY
