"""Which way of scoring multiple choice does the offline default do better with, with no prompt?
  loglik  each choice's length-normalised log-likelihood after the question (the default)
  letter  the template lists the choices as A., B., ...; the likeliest letter wins
Prints each task's test-set accuracy both ways, with the binomial standard error, and the chance level.
  PYTHONPATH=. python scripts/measure_choice_scoring.py [task ...]   (default: arc_easy arc_challenge openbookqa piqa social_iqa)
"""
import math
import platform
import sys
import time

import torch

from lopt_core.data.pack import lettered
from lopt_core.data.tasks import load_task
from lopt_core.lm import precision
from lopt_core.training import objectives

tasks = sys.argv[1:] or ["arc_easy", "arc_challenge", "openbookqa", "piqa", "social_iqa"]
lm = precision.load("smollm2-135m", "cpu", "fp32")
cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
           platform.processor())
print(f"# {lm.name} fp32, torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
print(f"{'task':15s} {'N':>4s} {'chance':>7s} {'loglik':>14s} {'letter':>14s}  seconds")
for name in tasks:
    data = load_task(name, source="offline")
    test = data.test
    chance = sum(1 / len(e.choices) for e in test) / len(test)
    obj = objectives.for_data(data, lm.tokenizer, 256)
    t0, out = time.time(), []
    for examples in (test, [lettered(e) for e in test]):
        acc = obj.evaluate(lm, obj.encode(examples), batch_size=32).score
        out.append(f"{acc:.3f} ± {math.sqrt(acc * (1 - acc) / len(test)):.3f}")
    print(f"{name:15s} {len(test):4d} {chance:7.3f} {out[0]:>14s} {out[1]:>14s}  {time.time() - t0:.0f}", flush=True)
