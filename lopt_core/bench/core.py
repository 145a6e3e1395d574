"""LoPT Lab's training step and evaluation against PEFT prompt tuning, in one process, same model, data, batches.

    python -m lopt_core.bench.core                      # n = 10,20,50,100, batch 8, 3 warm-up + 5 measured steps
    python -m lopt_core.bench.core --n 20,100 --quick   # fewer steps, shorter evaluation
    python -m lopt_core.bench.core --sweep              # sweeps: K prompts batched vs one run after another

A = LoPT Lab: engine.class_logits (shared prompt keys/values, answer-only label-word scores) + cross-entropy over
    the label words + backward + AdamW, prompt tuning.
B = peft PromptTuning (get_peft_model on the same frozen model), the standard `labels` loss of PEFT's docs:
    input = template + label word, labels = -100 except the label-word token, right-padded batch,
    model(**batch, labels=labels).loss (cross-entropy over the full vocabulary at the answer position).
Both start from the same prompt, see the same batches in the same order, and alternate step by step (the CPU
is shared with other jobs, so A and B are measured interleaved and compared as ratios).

Peak memory: each (method, n) runs in a fresh subprocess with glibc's mmap threshold fixed at 64 KiB (so
freed tensors go back to the OS and RSS tracks live memory); after loading and one warm-up step the kernel's
peak-RSS counter is reset (/proc/self/clear_refs), two steps run, and the reported number is peak RSS during
those steps minus RSS before them: the extra memory a training step needs on top of the loaded model.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from lopt_core.lm import engine
from lopt_core.methods.base import PromptContext
from lopt_core.methods.prompt_tuning import PromptTuning, init_prompt
from lopt_core.lm.models import OFFLINE_DEFAULT, load_model
from lopt_core.data.tasks import load_task

LR = 1e-2


# ---------------------------------------------------------------- setup

class Setup:
    """Model, tokenized data and the fixed batch order shared by A and B."""

    def __init__(self, model: str, batch: int, steps: int, seed: int = 0, max_length: int = 256,
                 precision: str = "fp32"):
        dtype, _, fa = precision.partition("+")   # "bf16+fa": bf16 weights, attention in fp32 (lm/attention.py)
        self.lm = load_model(model, "cpu", dtype, fp32_attention=bool(fa))
        self.data = load_task("sst2", seed=seed)
        tok = self.lm.tokenizer
        self.label_ids = engine.label_token_ids(tok, self.data.task.label_words)
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self.data.train), generator=g)[: batch * steps].tolist()
        self.train = engine.encode_examples(tok, [self.data.train[i] for i in pick], max_length)
        self.test = engine.encode_examples(tok, self.data.test, max_length)
        self.batch = batch
        self.batches = [list(range(s, s + batch)) for s in range(0, batch * steps, batch)]

    def init(self, n: int, seed: int = 0) -> torch.Tensor:
        ctx = PromptContext(self.lm.d, self.lm.embeddings, self.lm.tokenizer, seed)
        return init_prompt("vocab", n, ctx)  # (n, d)


class RunnerA:
    """LoPT Lab's step."""
    name = "A"

    def __init__(self, s: Setup, n: int):
        self.s = s
        self.method = PromptTuning(n, s.lm.d, s.init(n))
        self.opt = torch.optim.AdamW(self.method.parameters(), lr=LR, weight_decay=0.0)

    def step(self, idx: list[int]) -> float:
        s = self.s
        ids, mask, lengths = engine.collate([s.train.ids[i] for i in idx], s.lm.tokenizer.pad_token_id, s.lm.device)
        labels = torch.tensor([s.train.labels[i] for i in idx])
        logits = engine.class_logits(s.lm, ids, mask, lengths, s.label_ids, self.method)   # (B, C)
        loss = F.cross_entropy(logits, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    def prompt(self) -> torch.Tensor:
        return self.method.prompt.detach()

    def tokens(self, idx) -> tuple[int, int]:
        """(prefix tokens, batch tokens as run) per step."""
        L = [len(self.s.train.ids[i]) for i in idx]
        return self.method.n, (sum(L) if engine._choose_pack(self.s.lm, len(L), max(L), sum(L), self.method.n)
                               else len(L) * max(L))


class RunnerB:
    """peft PromptTuning with the standard labels loss."""
    name = "B"

    def __init__(self, s: Setup, n: int):
        import peft
        self.s, self.n = s, n
        cfg = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, prompt_tuning_init="RANDOM")
        self.model = peft.get_peft_model(s.lm.model, cfg)
        emb = self.model.prompt_encoder["default"].embedding
        with torch.no_grad():
            emb.weight.copy_(s.init(n))  # same starting prompt as A
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        assert sum(p.numel() for p in self.params) == n * s.lm.d
        self.opt = torch.optim.AdamW(self.params, lr=LR, weight_decay=0.0)

    def batch(self, idx, ids_of, labels_of):
        """Template ids + label-word id, right-padded; labels -100 except the label-word token."""
        pad = self.s.lm.tokenizer.pad_token_id
        seqs = [ids_of[i] + [self.s.label_ids[labels_of[i]]] for i in idx]
        L = max(len(x) for x in seqs)
        ids = torch.full((len(seqs), L), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        labels = torch.full((len(seqs), L), -100, dtype=torch.long)
        for r, x in enumerate(seqs):
            ids[r, : len(x)] = torch.tensor(x)
            mask[r, : len(x)] = 1
            labels[r, len(x) - 1] = x[-1]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def step(self, idx: list[int]) -> float:
        self.model.train()
        b = self.batch(idx, self.s.train.ids, self.s.train.labels)
        loss = self.model(**b).loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    def prompt(self) -> torch.Tensor:
        return self.model.prompt_encoder["default"].embedding.weight.detach()

    def tokens(self, idx) -> tuple[int, int]:
        return 0, len(idx) * (self.n + max(len(self.s.train.ids[i]) for i in idx) + 1)

    def close(self):
        self.model.base_model  # noqa: B018 - prompt tuning injects no layers; the base model is untouched


# ---------------------------------------------------------------- losses both ways

@torch.no_grad()
def losses_of(s: Setup, prompt: torch.Tensor, batches) -> tuple[float, float]:
    """(label-word CE, full-vocabulary CE) at the answer position under `prompt`, mean over `batches`."""
    m = PromptTuning(prompt.shape[0], s.lm.d, prompt)
    lw, fv = [], []
    label_t = torch.tensor(s.label_ids)
    for idx in batches:
        ids, mask, lengths = engine.collate([s.train.ids[i] for i in idx], s.lm.tokenizer.pad_token_id, "cpu")
        y = torch.tensor([s.train.labels[i] for i in idx])
        h = engine.answer_hidden(s.lm, ids, mask, lengths, m, shared_prefix=False)   # (B, d), plain path
        full = s.lm.model.get_output_embeddings()(h).float()                           # (B, V)
        lw.append(F.cross_entropy(full[:, label_t], y).item())
        fv.append(F.cross_entropy(full, label_t[y]).item())
    return sum(lw) / len(lw), sum(fv) / len(fv)


# ---------------------------------------------------------------- FLOPs

def model_dims(lm):
    c = lm.model.config
    d = c.hidden_size if hasattr(c, "hidden_size") else c.n_embd
    layers = c.num_hidden_layers if hasattr(c, "num_hidden_layers") else c.n_layer
    V = lm.model.get_output_embeddings().weight.shape[0]
    emb = {id(p) for p in lm.model.get_input_embeddings().parameters()} | \
          {id(p) for p in lm.model.get_output_embeddings().parameters()}
    body = sum(p.numel() for p in lm.model.parameters() if id(p) not in emb and p.dim() >= 2)
    return d, layers, V, body


def step_flops(lm, prefix: int, rows: list[tuple[int, int]], vocab_rows: int, C: int) -> float:
    """Forward + backward (activations only: weights are frozen, so 1x forward) FLOPs.

    rows: (query tokens, keys seen) per attention call; vocab_rows: positions projected onto the vocabulary
    (B: all of them; A: none, plus C label rows at the answer positions)."""
    d, layers, V, body = model_dims(lm)
    tokens = prefix + sum(q for q, _ in rows)
    lin = 2 * body * tokens
    att = layers * sum(4 * q * k * d for q, k in rows) + layers * 4 * prefix * prefix * d  # QK^T and AV
    head = 2 * vocab_rows * V * d + 2 * C * d * 8
    fwd = lin + att + head
    bwd = lin + 2 * att + head  # linear: dX only; attention: dQ, dK, dV all needed (K, V carry the prompt)
    return fwd + bwd


def flops_A(s: Setup, runner: RunnerA, idx) -> float:
    L = [len(s.train.ids[i]) for i in idx]
    n = runner.method.n
    if engine._packable(s.lm) and engine._choose_pack(s.lm, len(L), max(L), sum(L), n):
        return step_flops(s.lm, 0, [(n + sum(L), n + sum(L))], 0, len(s.label_ids))  # prompt leads the packed row
    return step_flops(s.lm, n, [(max(L), n + max(L))] * len(L), 0, len(s.label_ids))


def flops_B(s: Setup, n: int, idx) -> float:
    T = n + max(len(s.train.ids[i]) for i in idx) + 1
    return step_flops(s.lm, 0, [(T, T)] * len(idx), len(idx) * T, 0)


def matmul_peak(size: int = 2048, reps: int = 5) -> float:
    """Best measured fp32 matmul throughput (FLOP/s) at torch's thread setting, from CPU seconds x threads (the
    same clock as the training steps' GFLOP/s, so other jobs on a shared machine do not skew the share)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        torch.matmul(a, b)
        best = min(best, (time.process_time() - t) / torch.get_num_threads())
    return 2 * size ** 3 / best


# ---------------------------------------------------------------- training comparison

def train_compare(s: Setup, n: int, warmup: int, steps: int) -> dict:
    a, b = RunnerA(s, n), RunnerB(s, n)
    ta, tb, la, lb = [], [], [], []
    ca, cb = [], []                                           # CPU seconds of this process per step
    fa = fb = 0.0
    for k in range(warmup + steps):
        idx = s.batches[k % len(s.batches)]
        order = (a, b) if k % 2 == 0 else (b, a)  # alternate who goes first
        for r in order:
            t, c = time.perf_counter(), time.process_time()
            loss = r.step(idx)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            if k >= warmup:
                (ta if r is a else tb).append(dt)
                (ca if r is a else cb).append(dc)
            (la if r is a else lb).append(loss)
        if k >= warmup:
            fa += flops_A(s, a, idx)
            fb += flops_B(s, n, idx)
    used = s.batches[: warmup + steps]
    init_lw, init_fv = losses_of(s, s.init(n), s.batches[:1])  # step 1's batch under the shared initial prompt
    a_lw, a_fv = losses_of(s, a.prompt(), used)
    b_lw, b_fv = losses_of(s, b.prompt(), used)
    return {"n": n, "A_eps": s.batch * len(ta) / sum(ta), "B_eps": s.batch * len(tb) / sum(tb),
            "A_step_s": sum(ta) / len(ta), "B_step_s": sum(tb) / len(tb),
            "A_cpu_s": sum(ca) / len(ca), "B_cpu_s": sum(cb) / len(cb),
            "A_flops": fa / len(ta), "B_flops": fb / len(tb),
            "A_loss0": la[0], "B_loss0": lb[0], "init_lw": init_lw, "init_fv": init_fv, "A_loss": la[-1], "B_loss": lb[-1],
            "A_trained_lw": a_lw, "A_trained_fv": a_fv, "B_trained_lw": b_lw, "B_trained_fv": b_fv,
            "_a": a, "_b": b}


# ---------------------------------------------------------------- evaluation comparison

@torch.inference_mode()
def eval_B(s: Setup, peft_model, n: int, batch: int = 32) -> float:
    """PEFT's way: model forward on unsorted batches, logits at the answer position, label-word argmax."""
    peft_model.eval()
    correct = 0
    label_t = torch.tensor(s.label_ids)
    for st in range(0, len(s.test), batch):
        idx = list(range(st, min(st + batch, len(s.test))))
        ids, mask, lengths = engine.collate([s.test.ids[i] for i in idx], s.lm.tokenizer.pad_token_id, "cpu")
        logits = peft_model(input_ids=ids, attention_mask=mask).logits           # (B, n + L, V)
        ans = logits[torch.arange(len(idx)), n + lengths - 1][:, label_t]          # (B, C)
        correct += sum(int(p == s.test.labels[i]) for p, i in zip(ans.argmax(-1).tolist(), idx))
    return correct / len(s.test)


def eval_compare(s: Setup, res: dict, reps: int) -> dict:
    b = res["_b"]
    m = PromptTuning(res["n"], s.lm.d, b.prompt())  # B's trained prompt, scored by the engine: same accuracy
    ta, tb, ca, cb = [], [], [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        acc_a = engine.evaluate(s.lm, s.test, s.label_ids, m).accuracy
        ta.append(time.perf_counter() - t)
        ca.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        acc_b = eval_B(s, b.model, res["n"])
        tb.append(time.perf_counter() - t)
        cb.append(time.process_time() - c)
    return {"n": res["n"], "A_s": min(ta), "B_s": min(tb), "A_cpu": min(ca), "B_cpu": min(cb),
            "A_acc": acc_a, "B_acc": acc_b, "N": len(s.test)}


# ---------------------------------------------------------------- memory (subprocess per config)

def _rss() -> tuple[float, float]:
    st = open("/proc/self/status").read()
    get = lambda k: int(re.search(rf"{k}:\s+(\d+)", st).group(1)) / 1024  # noqa: E731  MiB
    return get("VmHWM"), get("VmRSS")


def memory_child(which: str, n: int, model: str, batch: int) -> float:
    s = Setup(model, batch, 3)
    r = RunnerA(s, n) if which == "A" else RunnerB(s, n)
    r.step(s.batches[0])
    import gc
    gc.collect()
    _, before = _rss()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    for idx in s.batches[1:3]:
        r.step(idx)
    peak, _ = _rss()
    return peak - before


def memory(which: str, n: int, model: str, batch: int) -> float | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    cmd = [sys.executable, "-m", "lopt_core.bench.core", "--_memory", which, "--n", str(n), "--model", model,
           "--batch", str(batch), "--threads", str(torch.get_num_threads())]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        return float(json.loads(out.stdout.strip().splitlines()[-1])["mib"])
    except Exception as e:  # noqa: BLE001 - a missing number is shown as "-"
        print(f"memory measurement {which} n={n} failed: {e}", file=sys.stderr)
        return None


# ---------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="10,20,50,100", help="prompt lengths, comma-separated")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--eval-n", type=int, default=20, help="prompt length for the evaluation comparison")
    p.add_argument("--eval-reps", type=int, default=1)
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--quick", action="store_true", help="1 warm-up + 3 steps, no memory subprocesses")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--model", default=OFFLINE_DEFAULT)
    p.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    ns = [int(x) for x in a.n.split(",") if x]
    if a._memory:
        print(json.dumps({"mib": memory_child(a._memory, ns[0], a.model, a.batch)}))
        return
    if a.quick:
        a.warmup, a.steps, a.no_memory = 1, 3, True

    peak = matmul_peak()
    s = Setup(a.model, a.batch, a.warmup + a.steps)
    d, layers, V, body = model_dims(s.lm)
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"fp32 matmul 2048^3 best {peak / 1e9:.1f} GFLOP/s")
    print(f"model: {s.lm.name} (d={d}, {layers} layers, vocab {V}, {body / 1e6:.1f}M non-embedding params); "
          f"batch {a.batch}, {a.warmup} warm-up + {a.steps} measured steps per method, interleaved; lr {LR}\n")
    rows, evres = [], None
    for n in ns:
        r = train_compare(s, n, a.warmup, a.steps)
        if not a.no_memory:
            r["A_mem"], r["B_mem"] = memory("A", n, a.model, a.batch), memory("B", n, a.model, a.batch)
        rows.append(r)
        print(f"  n={n}: A {r['A_eps']:.1f} ex/s, B {r['B_eps']:.1f} ex/s", file=sys.stderr, flush=True)
        if not a.no_eval and n == a.eval_n:
            evres = eval_compare(s, r, a.eval_reps)
        r.pop("_a"), r.pop("_b")
    if not a.no_eval and evres is None:
        r = train_compare(s, a.eval_n, 0, 1)
        evres = eval_compare(s, r, a.eval_reps)

    fmt = lambda x, f="{:.0f}": "-" if x is None else f.format(x)  # noqa: E731
    print("Wall clock: examples/s over the measured steps. CPU: the same from this process's CPU seconds per step "
          "(robust to other jobs on a shared machine; with 1 thread it is the compute the step needs).")
    print("| n | A ex/s | B ex/s | A/B wall | A/B CPU | A step s (CPU s) | B step s (CPU s) | A peak MiB | "
          "B peak MiB | A GFLOP/step | B GFLOP/step | A GFLOP/s (CPU) | A % of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gf = r["A_flops"] / r["A_cpu_s"] * torch.get_num_threads()  # per CPU second x threads
        print(f"| {r['n']} | {r['A_eps']:.2f} | {r['B_eps']:.2f} | **{r['A_eps'] / r['B_eps']:.2f}×** | "
              f"**{r['B_cpu_s'] / r['A_cpu_s']:.2f}×** | {r['A_step_s']:.2f} ({r['A_cpu_s']:.2f}) | "
              f"{r['B_step_s']:.2f} ({r['B_cpu_s']:.2f}) | {fmt(r.get('A_mem'))} | {fmt(r.get('B_mem'))} | "
              f"{r['A_flops'] / 1e9:.1f} | {r['B_flops'] / 1e9:.1f} | {gf / 1e9:.1f} | {100 * gf / peak:.0f}% |")
    print("\nLosses (same init, same batches). Training losses are each method's own objective: A = cross-entropy "
          "over the label words, B = full-vocabulary cross-entropy at the answer position. 'trained' columns score "
          "each trained prompt both ways on the batches seen (plain concatenation, no shared cache):")
    print("Check: step 1's losses recomputed from the initial prompt by plain concatenation, label-word CE / "
          "full-vocab CE: " + ", ".join(f"n={r['n']}: {r['init_lw']:.4f} / {r['init_fv']:.4f}" for r in rows)
          + " (equal to A's and B's step-1 losses: same model, prompt, batch and answer position).")
    print("| n | A loss step 1 | B loss step 1 | A loss last | B loss last | A trained: label-word CE | "
          "B trained: label-word CE | A trained: full-vocab CE | B trained: full-vocab CE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['A_loss0']:.4f} | {r['B_loss0']:.4f} | {r['A_loss']:.4f} | {r['B_loss']:.4f} | "
              f"{r['A_trained_lw']:.4f} | {r['B_trained_lw']:.4f} | {r['A_trained_fv']:.4f} | "
              f"{r['B_trained_fv']:.4f} |")
    if evres:
        e = evres
        print(f"\nEvaluation, {e['N']} SST-2 validation sentences, n={e['n']} (B's trained prompt in both): "
              f"A engine.evaluate {e['A_s']:.2f} s ({e['N'] / e['A_s']:.0f} ex/s, acc {e['A_acc']:.4f}); "
              f"B PEFT forward, batch 32 unsorted {e['B_s']:.2f} s ({e['N'] / e['B_s']:.0f} ex/s, acc "
              f"{e['B_acc']:.4f}); A/B = **{e['B_s'] / e['A_s']:.2f}×** wall, **{e['B_cpu'] / e['A_cpu']:.2f}×** CPU "
              f"(CPU s: A {e['A_cpu']:.2f}, B {e['B_cpu']:.2f})")


if __name__ == "__main__":
    main()
