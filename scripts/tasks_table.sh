#!/usr/bin/env bash
# The task-kinds measurement (issue: tasks), on the offline default at full settings: a generation task and a
# multiple-choice task, prompt tuning, LoPT-1 and ULPT at n=20 (r 1, 2, 5), 150 steps, seeds 0 and 1, each
# configuration scored on the whole test split; then the table (scripts/tasks_table.py) with paired tests.
#   TASKS_HOME=/work/tasks-home bash scripts/tasks_table.sh > bench/tasks-<date>.txt
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
export LOPT_HOME=${TASKS_HOME:-$HOME/lopt-tasks} LOPT_MODEL_CACHE=${LOPT_MODEL_CACHE:-$ROOT/.cache/models} HF_HUB_OFFLINE=1
export PYTHONPATH=$ROOT
MC=${MC_TASK:-arc_easy}
for task in arithmetic "$MC"; do
  "$PY" -m lopt_core sweep --task "$task" --methods prompt_tuning,lopt1,ulpt --n 20 --r 1,2,5 --seeds 0,1 \
    --steps 150 --batch-size 8 --eval-every 0 --eval-size 0 >&2 || exit 1
done
"$PY" scripts/tasks_table.py
