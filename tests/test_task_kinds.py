"""Generation and multiple-choice tasks (data/examples.py, training/objectives.py): their data, their scoring,
the exactness of every fast path for answer tokens, batched greedy decoding, K-prompt groups and user files."""
from __future__ import annotations

import json

import pytest
import torch

from lopt_core.config import ConfigError, RunConfig
from lopt_core.data import metrics
from lopt_core.data.tasks import TaskError, fingerprint, get_task, load_task, load_user_generation
from lopt_core.lm import decode, engine, multi_prompt
from lopt_core.lm.models import load_model
from lopt_core.methods import get_method
from lopt_core.training.checks import check
from lopt_core.training.loop import train, train_group

GEN_TASKS = ["arithmetic", "nq_open", "trivia_qa", "sciq"]
MC_TASKS = ["arc_easy", "arc_challenge", "openbookqa", "piqa", "hellaswag", "winogrande", "social_iqa",
            "commonsense_qa", "mmlu", "mmlu:anatomy"]


# ---------------------------------------------------------------- scoring

@pytest.mark.parametrize("answer,gold,em,f1", [
    ("The Eiffel Tower.", ["eiffel tower"], 1.0, 1.0),          # articles, case and punctuation go
    ("96", ["96"], 1.0, 1.0),
    ("97", ["96"], 0.0, 0.0),
    ("in 1996", ["1998", "1996"], 0.0, 2 / 3),                  # the best gold answer counts
    ("Sunset Blvd", ["Sunset Boulevard", "Sunset Blvd"], 1.0, 1.0),
    ("", ["x"], 0.0, 0.0),
])
def test_exact_match_and_f1_are_squad_style(answer, gold, em, f1):
    assert metrics.exact_match(answer, gold) == em
    assert metrics.f1(answer, gold) == pytest.approx(f1)


# ---------------------------------------------------------------- offline data

@pytest.mark.parametrize("name", GEN_TASKS + MC_TASKS)
def test_offline_tasks_load_with_their_kind(name):
    d = load_task(name, source="offline")
    kind = "generation" if name in GEN_TASKS else "multiple_choice"
    assert d.kind == kind == get_task(name).kind and len(d.train) > 50 and len(d.test) > 50
    for e in d.test[:50]:
        if kind == "generation":
            assert e.answers and all(a.strip() for a in e.answers)
        else:
            assert len(e.choices) >= 2 and 0 <= e.label < len(e.choices)
    again = load_task(name, source="offline")
    assert fingerprint(d.test) == fingerprint(again.test), "the split is fixed"
    assert fingerprint(load_task(name, seed=1, source="offline").test) != fingerprint(d.test)


def test_arithmetic_reads_the_right_answer_and_winogrande_fills_its_blank():
    d = load_task("arithmetic", source="offline")
    for e in d.test[:200]:
        expr = e.text.removeprefix("Calculate ").removesuffix(" =")
        a, op, b = expr.split()
        if op in "+-*":
            assert int(e.answers[0]) == eval(f"{int(a)} {op} {int(b)}"), e  # noqa: S307 (digits and one operator)
    w = load_task("winogrande", source="offline").test[0]
    assert len(w.contexts) == 2 and w.choices[0] == w.choices[1] and "_" not in w.contexts[0]


def test_squad_and_gsm8k_come_from_the_hub_where_it_answers(monkeypatch):
    """Hub sources: SQuAD (the passage, the question, every gold span) and GSM8K (the number after ####). Offline
    they are refused by name; with the Hub (datasets.load_dataset, here given rows in the Hub's own shape) they
    load, and a test split longer than the offline cap is cut to it."""
    import datasets
    from lopt_core.data import tasks
    from lopt_core.lm import models
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
    for name in ("squad", "gsm8k"):
        with pytest.raises(TaskError, match=f"task '{name}' is not available offline"):
            tasks.where(name)
    squad_row = {"context": "The  Normans gave their name to Normandy.", "question": "Who gave Normandy its name?",
                 "answers": {"text": ["The Normans", "Normans", "Normans"], "answer_start": [0, 4, 4]}}
    gsm_row = {"question": "Tom has 3 apples and buys 1,197 more. How many?",
               "answer": "3 + 1197 = <<3+1197=1200>>1200\n#### 1,200"}
    shards = {"squad": {"train": [squad_row] * 3, "validation": [squad_row] * (tasks.MAX_TEST + 20)},
              "gsm8k": {"train": [gsm_row] * 3, "test": [gsm_row] * 7}}
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, *rest: shards[name])
    sq = load_task("squad")
    assert sq.task.kind == "generation" and len(sq.test) == tasks.MAX_TEST and sq.source.startswith("hub: squad")
    e = sq.test[0]
    assert e.text == "Passage: The Normans gave their name to Normandy.\nQuestion: Who gave Normandy its name?\nAnswer:"
    assert e.answers == ("The Normans", "Normans")
    assert metrics.exact_match("normans", e.answers) == 1.0
    g = load_task("gsm8k")
    assert g.test[0].answers == ("1200",) and g.test[0].text.startswith("Question: Tom has 3 apples")


def test_unknown_tasks_and_subjects_name_the_choices():
    with pytest.raises(TaskError, match="unknown task 'arithmetics'.*arithmetic"):
        get_task("arithmetics")
    with pytest.raises(TaskError, match="unknown MMLU subject 'anatomyy'.*anatomy"):
        get_task("mmlu:anatomyy")


# ---------------------------------------------------------------- exactness of answer-token scoring

TEXTS = ["Calculate 5 + 91 =", "Question: who wrote Hamlet?\nAnswer:", "Calculate 585 - 477 =",
         "Question: what is the capital of France, the country west of Germany?\nAnswer:"]
TARGETS = [" 96\n", " William Shakespeare\n", " 108\n", " Paris\n"]
TOL = {"fp32": dict(rtol=1e-5, atol=1e-4), "bf16": dict(rtol=2e-2, atol=2e-1)}


def _rows(tok):
    rows, n_t = [], []
    for t, y in zip(TEXTS, TARGETS):
        ids = engine.encode(tok, [t], 256)[0] + tok(y, add_special_tokens=False)["input_ids"]
        rows.append(ids)
        n_t.append(len(tok(y, add_special_tokens=False)["input_ids"]))
    ids, mask, lengths = engine.collate(rows, tok.pad_token_id, "cpu")
    return rows, ids, mask, lengths, torch.tensor(n_t)


def _reference_logprob(lm, P, row, n_target) -> torch.Tensor:
    """Plain concatenation, one row alone, the model's full forward and head: sum of log p(target tokens)."""
    n = P.shape[0]
    ids = torch.tensor([row])
    emb = torch.cat([P.to(lm.dtype).unsqueeze(0), lm.model.get_input_embeddings()(ids)], 1)
    logp = lm.model(inputs_embeds=emb).logits.float().log_softmax(-1)[0]            # (n + L, V)
    L = len(row)
    pos = torch.arange(n + L - n_target - 1, n + L - 1)
    return logp[pos, torch.tensor(row[L - n_target:])].sum()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("pack", ["never", "always"])
@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_gpt2_dir"])
def test_answer_token_logprobs_and_gradients_equal_plain_concatenation(request, monkeypatch, fixture, pack,
                                                                     precision):
    monkeypatch.setattr(engine, "PACK", pack)
    lm = load_model(request.getfixturevalue(fixture), "cpu", precision)
    rows, ids, mask, lengths, n_t = _rows(lm.tokenizer)
    P0 = torch.randn(6, lm.d, generator=torch.Generator().manual_seed(0)) * 0.5
    m = get_method("prompt_tuning")(6, lm.d, P0)
    total, count = engine.target_logprob(lm, ids, mask, lengths, n_t, method=m)
    assert count.tolist() == n_t.tolist()
    (-total.sum()).backward()
    P = P0.clone().requires_grad_(True)
    ref = torch.stack([_reference_logprob(lm, P, r, int(k)) for r, k in zip(rows, n_t)])
    (-ref.sum()).backward()
    assert ref.abs().min() > 1e-2, "the comparison must be able to fail"
    torch.testing.assert_close(total.detach(), ref.detach(), **TOL[precision])
    g = 1e-4 if precision == "fp32" else 5e-2
    torch.testing.assert_close(m.prompt.grad, P.grad, rtol=g, atol=g * float(P.grad.abs().max()))
    # the shared prompt cache (no packing) gives the same numbers
    with torch.no_grad():
        kv = engine.prefix_kv(lm, P0)
        cached, _ = engine.target_logprob(lm, ids, mask, lengths, n_t, method=m, kv=kv)
    torch.testing.assert_close(cached, ref.detach(), **TOL[precision])


def test_k_prompts_in_one_pass_give_each_prompts_answer_logprobs(tiny_model_dir):
    lm = load_model(tiny_model_dir, "cpu")
    rows, ids, mask, lengths, n_t = _rows(lm.tokenizer)
    prompts = [torch.randn(n, lm.d, generator=torch.Generator().manual_seed(n)) * 0.5 for n in (2, 7, 4)]
    total, count = multi_prompt.target_logprob(lm, ids, mask, n_t, prompts)          # (K, B), (B,)
    assert total.shape == (3, 4) and count.tolist() == n_t.tolist()
    with torch.no_grad():
        for k, P in enumerate(prompts):
            ref = torch.stack([_reference_logprob(lm, P, r, int(t)) for r, t in zip(rows, n_t)])
            torch.testing.assert_close(total[k], ref, rtol=1e-5, atol=1e-4)


def test_a_prompt_that_reads_its_input_never_reads_the_answer(tiny_model_dir):
    """LoPA builds its prompt from the input: under teacher forcing it must see the question, not the answer."""
    lm = load_model(tiny_model_dir, "cpu")
    seen = []

    class Spy(torch.nn.Module):
        def prompt_for(self, lm_, ids, mask):
            seen.append(mask.sum(1).tolist())
            return torch.zeros(3, lm.d)
    rows, ids, mask, lengths, n_t = _rows(lm.tokenizer)
    engine.target_logprob(lm, ids, mask, lengths, n_t, method=Spy(), shared_prefix=False)
    assert seen == [(lengths - n_t).tolist()]


def test_batched_greedy_decoding_writes_what_each_row_writes_alone(tiny_model_dir):
    lm = load_model(tiny_model_dir, "cpu")
    tok = lm.tokenizer
    P = torch.randn(5, lm.d, generator=torch.Generator().manual_seed(3))
    m = get_method("prompt_tuning")(5, lm.d, P)
    rows = engine.encode(tok, TEXTS, 256)
    for method in (None, m):
        together = decode.greedy(lm, rows, 6, method)
        alone = [decode.greedy(lm, [r], 6, method)[0] for r in rows]
        assert together == alone and all(len(x) >= 1 for x in together)
    # and what plain concatenation writes, one greedy token at a time
    with torch.no_grad():
        ids, want = list(rows[1]), []
        for _ in range(6):
            emb = torch.cat([P.unsqueeze(0), lm.model.get_input_embeddings()(torch.tensor([ids]))], 1)
            nxt = int(lm.model(inputs_embeds=emb).logits[0, -1].argmax())
            want.append(nxt)
            if nxt in decode.stop_ids(tok):
                break
            ids.append(nxt)
    assert decode.greedy(lm, [rows[1]], 6, m)[0] == want


def test_an_answer_ends_at_its_newline():
    from lopt_core.lm.models import offline_default_folder
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(offline_default_folder()))
    ids = tok(" 96\nCalculate 1 + 1 =", add_special_tokens=False)["input_ids"]
    assert decode.answer_text(tok, ids) == "96"


# ---------------------------------------------------------------- training

def _gen_cfg(model, method="prompt_tuning", n=4, r=2, **kw):
    base = dict(model=model, task="arithmetic", method=method, n=n, r=r, steps=4, batch_size=4, eval_every=0,
                eval_size=12, lr=0.05, device="cpu")
    return RunConfig(**(base | kw))


def test_a_generation_run_reports_exact_match_f1_and_target_loss(tiny_model_dir):
    res = train(_gen_cfg(tiny_model_dir, "lopt1", n=6, r=2), save=False)
    assert res["state"] == "done" and res["kind"] == "generation" and res["metric"] == "exact_match"
    assert res["score"] == res["accuracy"] and 0 <= res["score"] <= 1
    assert set(res["scores"]) == {"f1", "target_loss"} and res["scores"]["target_loss"] > 0
    assert res["zero_shot_accuracy"] is not None


@pytest.mark.parametrize("task", ["arithmetic", "arc_easy"])
def test_k_prompt_groups_match_solo_runs_on_generation_and_choices(tiny_model_dir, monkeypatch, task):
    cfgs = [_gen_cfg(tiny_model_dir, m, n, r, task=task) for m, n, r in
            [("prompt_tuning", 4, 1), ("lopt1", 6, 2), ("ulpt", 3, 2)]]
    passes, curves = [], {}
    real = multi_prompt.target_logprob
    monkeypatch.setattr(multi_prompt, "target_logprob", lambda *a, **k: passes.append(len(a[4])) or real(*a, **k))
    monkeypatch.setattr(engine, "PACK", "always")
    results = train_group(cfgs, on_event=lambda rid, ev: ev["type"] == "step" and curves.setdefault(rid, []).append(
        ev["loss"]), prompts_per_pass=3, save=False)
    assert passes == [3] * 4, "every step ran one K-prompt pass"
    for c, res in zip(cfgs, results):
        alone = []
        ref = train(c, on_event=lambda ev: ev["type"] == "step" and alone.append(ev["loss"]), save=False)
        assert curves[res["run_id"]] == pytest.approx(alone, abs=2e-5), c.method
        assert res["score"] == pytest.approx(ref["score"], abs=1 / 12 + 1e-9) and res["metric"] == ref["metric"]


def test_a_choice_run_reports_accuracy(tiny_model_dir):
    res = train(_gen_cfg(tiny_model_dir, task="winogrande", steps=2, eval_size=8), save=False)
    assert res["state"] == "done" and res["metric"] == "accuracy" and res["kind"] == "multiple_choice"
    assert res["scores"] == {} and res["score"] in {i / 8 for i in range(9)}


# ---------------------------------------------------------------- user files

def _jsonl(tmp_path, rows, name="pairs.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_a_user_jsonl_of_input_output_pairs_trains_a_generation_task(tiny_model_dir, tmp_path):
    rows = [{"input": f"{a} plus {b}", "output": str(a + b)} for a in range(6) for b in range(4)]
    rows[0]["output"] = ["0", "zero"]   # several gold answers
    p = _jsonl(tmp_path, rows)
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(p), kind="generation", text_column="input",
                    target_column="output", method="lopt1", n=4, r=2, steps=2, batch_size=4, eval_every=0,
                    eval_size=0, device="cpu")
    check(cfg)
    res = train(cfg, save=False)
    assert res["state"] == "done" and res["metric"] == "exact_match" and res["kind"] == "generation"
    d = load_user_generation(str(p), "input", "output")
    assert ("0", "zero") in [e.answers for e in d.train + d.test]


def test_a_user_file_with_choice_columns_trains_multiple_choice(tiny_model_dir, tmp_path):
    rows = [{"q": f"Which is bigger than {i}?", "a": str(i + 1), "b": str(i - 1), "right": "A" if i % 2 else "a"}
            for i in range(12)]
    for r in rows:
        r["right"] = "0" if r["right"] == "a" else "A"
    p = _jsonl(tmp_path, rows, "mc.jsonl")
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(p), kind="multiple_choice", text_column="q",
                    choice_columns=["a", "b"], label_column="right", method="prompt_tuning", n=3, steps=2,
                    batch_size=4, eval_every=0, eval_size=0, device="cpu")
    check(cfg)
    res = train(cfg, save=False)
    assert res["state"] == "done" and res["metric"] == "accuracy" and res["kind"] == "multiple_choice"


@pytest.mark.parametrize("rows,message", [
    ([{"input": "a", "output": ""}] + [{"input": "b", "output": "c"}] * 5, r"1 row\(s\) have an empty 'output' "
                                                                           r"\(first: row 1\)"),
    ([{"input": "a", "output": "word " * 200}] * 5, r"row 1: the target is \d+ tokens; the most .* is 64"),
    ([{"input": "a", "output": "b"}] * 3, "has 3 rows; need at least 4"),
    ([{"input": "a", "answer": "b"}] * 5, r"lacks column\(s\) \['output'\]"),
])
def test_bad_generation_files_are_refused_before_queuing(tiny_model_dir, tmp_path, rows, message):
    p = _jsonl(tmp_path, rows)
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(p), kind="generation", text_column="input",
                    target_column="output", device="cpu")
    with pytest.raises(ConfigError, match=message):
        check(cfg)


def test_kind_settings_that_cannot_work_are_refused(tiny_model_dir, tiny_t5_dir):
    with pytest.raises(ConfigError, match="needs target_column"):
        RunConfig(task="file", data_file="x.jsonl", kind="generation").validate()
    with pytest.raises(ConfigError, match="at least two choice_columns"):
        RunConfig(task="file", data_file="x.jsonl", kind="multiple_choice", choice_columns=["a"]).validate()
    with pytest.raises(ConfigError, match="kind must be"):
        RunConfig(kind="essay").validate()
    with pytest.raises(ConfigError, match="task arithmetic is generation, not multiple choice"):
        check(RunConfig(model=tiny_model_dir, task="arithmetic", kind="multiple_choice", device="cpu"))
    with pytest.raises(ConfigError, match="label words are for classification"):
        check(RunConfig(model=tiny_model_dir, task="arc_easy", label_words=[" a", " b"], device="cpu"))
    with pytest.raises(ConfigError, match="need a causal LM"):
        check(RunConfig(model=tiny_t5_dir, task="arithmetic", method="prompt_tuning", device="cpu"))


def test_rank_views_work_on_a_generation_run_scored_by_its_metric(tiny_model_dir):
    """Spectrum and truncation read a generation run's prompt; truncation scores it by exact match, and the
    full-rank point reproduces the run's own score on the same examples."""
    from lopt_core.analysis import spectrum, truncate
    from lopt_core.store.sqlite import Store
    from lopt_core.training.runs import run_and_record
    store = Store()
    res = run_and_record(_gen_cfg(tiny_model_dir, "lopt1", n=6, r=2, eval_size=12), store=store)
    row = store.get(res["run_id"])
    assert spectrum.of_run(row).numerical_rank == 2
    curve = truncate.truncation_curve(row, "1,2", eval_size=12)
    by_k = {p["k"]: p["accuracy"] for p in curve["points"]}
    assert by_k[2] == curve["full_accuracy"] == row["accuracy"] == res["score"]
