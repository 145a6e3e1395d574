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
if argv and argv[0] in which:  # the first argument picks the benchmark; the rest are its own (--precision too)
    raise SystemExit(which[argv[0]].main(argv[1:]))
raise SystemExit(core.main(argv))
