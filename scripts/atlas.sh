#!/usr/bin/env bash
# The reference atlas (issue: evidence): each sweep below is run, or resumed where it stopped, by the sweep
# command itself, at the precision auto picks on this machine and full settings; each finished sweep is exported
# to assets/atlas/<name>.json (commit it then). Safe to run again: finished files are skipped, an unfinished sweep
# of the same command is resumed (its finished configurations are kept).
#   ATLAS_HOME=/work/atlas-home bash scripts/atlas.sh [name ...]      # default: every sweep, in order
# Long: ~1 h per seed of the 13-configuration SST-2 sweep with both cores of the 2-core AMD EPYC; the Gemma 3 sweep
# (the second model's issue: its README table of prompt tuning, LoPT-1 r=5 and ULPT r=2; ranks 2 and 5 for its rank
# view, 10 configurations over 2 seeds in one group) comes after the n sweep's first seed and takes about as long
# as two SST-2 seeds. A killed sweep
# resumes from its configurations' checkpoints (training/checkpoints.py).
# Across machines (a session's store is gone with it): `bash scripts/atlas.sh --carry` exports every unfinished
# atlas sweep, with its checkpoints, to assets/atlas/unfinished/<name>.json (commit those); the next run on a
# fresh store imports that file and resumes the sweep from the carried steps. The file goes when the sweep lands.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
export LOPT_HOME=${ATLAS_HOME:-$HOME/lopt-atlas} LOPT_MODEL_CACHE=${LOPT_MODEL_CACHE:-$ROOT/.cache/models} HF_HUB_OFFLINE=1
FULL="--steps 150 --batch-size 8 --eval-every 0 --eval-size 0"
declare -A SWEEPS=(
  [sst2-rank-seed0]="--task sst2 --methods prompt_tuning,lopt1,lopt2,ulpt --n 20 --r 1,2,5,10 --seeds 0 $FULL"
  [sst2-rank-seed1]="--task sst2 --methods prompt_tuning,lopt1,lopt2,ulpt --n 20 --r 1,2,5,10 --seeds 1 $FULL"
  [sst2-rank-seed2]="--task sst2 --methods prompt_tuning,lopt1,lopt2,ulpt --n 20 --r 1,2,5,10 --seeds 2 $FULL"
  [sst2-n-seed0]="--task sst2 --methods prompt_tuning,lopt1,ulpt --n 5,10,20,50 --r 2 --seeds 0 $FULL"
  [sst2-n-seed1]="--task sst2 --methods prompt_tuning,lopt1,ulpt --n 5,10,20,50 --r 2 --seeds 1 $FULL"
  [arithmetic-rank]="--task arithmetic --methods prompt_tuning,lopt1,ulpt --n 20 --r 1,2,5 --seeds 0,1 $FULL"
  [gemma-sst2-rank]="--model gemma3-270m --task sst2 --methods prompt_tuning,lopt1,ulpt --n 20 --r 2,5 --seeds 0,1 $FULL"
  [piqa-rank]="--task piqa --methods prompt_tuning,lopt1,ulpt --n 20 --r 1,2,5 --seeds 0,1 $FULL"
)
ORDER=(sst2-rank-seed0 arithmetic-rank sst2-rank-seed1 sst2-n-seed0 gemma-sst2-rank sst2-rank-seed2 sst2-n-seed1
       piqa-rank)
CARRY=0
[ "${1:-}" = --carry ] && { CARRY=1; shift; }
[ $# -gt 0 ] && ORDER=("$@")
cd "$ROOT"

# the newest sweep in the store whose command gives every flag of $1 the same value, in a state of $2 (a
# comma-separated list; "!done" means any state but done, "any" any state)
find_sweep() {
  "$PY" -m lopt_core sweeps --json | "$PY" -c "
import json, shlex, sys

def flags(words):
    out, key = {}, None
    for w in words:
        if w.startswith('--'):
            key = w; out[key] = ''
        elif key is not None:
            out[key] = (out[key] + ' ' + w).strip()
    return out

want, states = flags(shlex.split(sys.argv[1])), sys.argv[2]
for s in reversed(json.load(sys.stdin)):
    have = flags(shlex.split(s['command']))
    ok = states == 'any' or (s['state'] != 'done' if states == '!done' else s['state'] in states.split(','))
    if ok and all(have.get(k) == v for k, v in want.items()):
        print(s['sweep_id']); break" "$1" "$2"
}

for name in "${ORDER[@]}"; do
  out="assets/atlas/$name.json" carried="assets/atlas/unfinished/$name.json"
  [ -f "$out" ] && { echo "$name: $out exists, skipped"; continue; }
  args=${SWEEPS[$name]}
  if [ $CARRY = 1 ]; then  # export what this store has of the unfinished sweep, checkpoints included
    sid=$(find_sweep "$args" '!done')
    [ -n "$sid" ] && "$PY" -m lopt_core sweep-export --sweep "$sid" --out "$carried" --checkpoints
    continue
  fi
  if [ -f "$carried" ] && [ -z "$(find_sweep "$args" any)" ]; then  # a fresh store: take the carried one
    "$PY" -m lopt_core sweep-import "$carried" || exit 1
  fi
  done_sid=$(find_sweep "$args" done)  # finished, but not exported (the script stopped in between)
  sid=$([ -z "$done_sid" ] && find_sweep "$args" '!done')  # the same command, not finished: resume it
  echo "$(date -u +%FT%TZ) $name: ${done_sid:+export $done_sid}${sid:+resume $sid}$([ -z "$sid$done_sid" ] && echo start)"
  if [ -z "$done_sid" ]; then
    if [ -n "$sid" ]; then "$PY" -m lopt_core sweep --resume "$sid" || exit 1
    else "$PY" -m lopt_core sweep $args || exit 1; fi
    done_sid=$(find_sweep "$args" done)
  fi
  [ -n "$done_sid" ] || { echo "$name: no finished sweep of this command in the store"; exit 1; }
  "$PY" -m lopt_core sweep-export --sweep "$done_sid" --out "$out" && rm -f "$carried" &&
    echo "$(date -u +%FT%TZ) $name: wrote $out"
done
