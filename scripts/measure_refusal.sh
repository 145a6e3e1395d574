#!/usr/bin/env bash
# How long the CLI takes to refuse a 1.44M-configuration sweep (n and r 1..400, 3 methods, 3 seeds) against an
# unknown method, interleaved, 3 rounds each: the first must be refused as fast as any other bad value.
#   bash scripts/measure_refusal.sh > bench/refusal-DATE.txt
cd "$(dirname "$0")/.."
BIG=$(python3 -c "print(','.join(str(i) for i in range(1, 401)))")
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) cores; $(date -u +%F)"
for k in 1 2 3; do
  for what in huge-grid unknown-method; do
    s=$(date +%s.%N)
    if [ $what = huge-grid ]; then .venv/bin/python -m lopt_core sweep --dry-run --methods lopt1,lopt2,ulpt --n "$BIG" --r "$BIG" --seeds 0,1,2 2>/tmp/refusal.err
    else .venv/bin/python -m lopt_core sweep --dry-run --methods nope --n 20 --r 2 2>/tmp/refusal.err; fi
    e=$(date +%s.%N)
    printf '%-15s %6.2f s  %s\n' "$what" "$(echo "$e - $s" | bc)" "$(tail -1 /tmp/refusal.err | cut -c1-80)"
  done
done
