"""`python -m lopt_core.bench [--sweep | --precision] [...]`: which benchmark, by its flag.

    (none)        LoPT Lab's training step and evaluation against PEFT prompt tuning (core.py)
    --sweep       K prompts batched against one run after another (sweep.py)
    --precision   fp32 against bf16 on this machine (precision.py)
    --sweep-precision   the 13-configuration rank-sensitivity sweep in fp32 against bf16 (sweep_precision.py)
"""
import sys

from lopt_core.bench import core, precision, sweep, sweep_precision

argv = sys.argv[1:]
which = {"--sweep": sweep, "--precision": precision, "--sweep-precision": sweep_precision}
chosen = next((which[a] for a in argv if a in which), core)
raise SystemExit(chosen.main([a for a in argv if a not in which]))
