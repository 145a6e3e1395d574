"""Generate tab: one text, "no prompt" plus up to four trained prompts side by side (lopt_core.analysis.side_by_side)."""
from __future__ import annotations

import gradio as gr

from lopt_core.methods import METHODS
from lopt_core.hosting.safe_errors import ui_error
from lopt_core.analysis.side_by_side import MAX_PROMPTS, PromptBank, generate_columns
from lopt_core.analysis.test_answers import MAX_EXAMPLES, answer_table
from lopt_core.ui.common import AppContext, asset_text, default_model, run_choices
from lopt_core.errors import LoptError


def build(ctx: AppContext):
    bank = PromptBank()
    gr.Markdown(asset_text("generate.md"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox("a gripping, beautifully acted film", label="Input text", lines=2, elem_id="lopt-gen-text")
            runs = gr.Dropdown([], value=[], multiselect=True, max_choices=MAX_PROMPTS, allow_custom_value=True,
                               label=f"Trained prompts (up to {MAX_PROMPTS} finished runs)", elem_id="lopt-gen-runs")
            use_template = gr.Checkbox(True, label="put the text into each run's task template (e.g. 'Review: … Sentiment:')")
        with gr.Column(scale=2):
            max_new = gr.Slider(1, 128, value=20, step=1, label="max new tokens")
            temperature = gr.Slider(0, 2, value=0, step=0.05, label="temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="top-p")
            seed = gr.Number(0, label="seed", precision=0, minimum=0)
    go = gr.Button("Generate side by side", variant="primary", elem_id="lopt-generate")
    slots = []
    with gr.Row(equal_height=False):
        for i in range(MAX_PROMPTS + 1):
            with gr.Column(visible=i == 0, min_width=200) as col:
                title = gr.Markdown("**No prompt (base model)**" if i == 0 else "")
                out = gr.Textbox(label="generated", lines=5, interactive=False, elem_id=f"lopt-gen-out-{i}")
                probs = gr.Label(label="label probabilities", num_top_classes=6, elem_id=f"lopt-gen-probs-{i}")
            slots.append((col, title, out, probs))
    seen = gr.Markdown("", elem_id="lopt-gen-seen")

    def on_generate(run_ids, text_, use_t, mx, temp, tp, sd, token=None, request: gr.Request = None):
        mine = {r["run_id"] for r in choices(token, request)}
        run_ids = [i for i in (run_ids or []) if i in mine]  # another visitor's private run reads as not chosen
        try:
            cols = generate_columns(ctx.store, bank, run_ids, text_, use_t, mx, temp, tp, sd,
                                    default_model(ctx.limits))
        except LoptError as e:
            raise ui_error(e) from None
        outs = []
        for i, (col, title, out, probs) in enumerate(slots):
            if i < len(cols):
                c = cols[i]
                outs += [gr.update(visible=True), f"**{c['title']}**", c["output"], c["probs"]]
            else:
                outs += [gr.update(visible=False), "", "", None]
        inputs = sorted({c["input"] for c in cols})
        outs.append("Input as the model saw it: " + " | ".join(f"`{s!r}`" for s in inputs))
        return outs

    flat = [x for s in slots for x in s] + [seen]
    go.click(on_generate, ctx.inputs(runs, text, use_template, max_new, temperature, top_p, seed), flat,
             api_name="generate")

    gr.Markdown("### On the task's own test examples\nThe chosen prompts and no prompt answer the first test "
                "examples of their task, beside the gold answers: ✓ right, ✗ wrong (exact match for a "
                "generation task, the chosen answer for the others). For a generation task you may also type a "
                "question of your own.")
    with gr.Row():
        k = gr.Slider(1, MAX_EXAMPLES, value=20, step=1, label="test examples", elem_id="lopt-ans-k")
        question = gr.Textbox("", label="or your own question (generation tasks; blank: the test examples)",
                              elem_id="lopt-ans-question")
    answer = gr.Button("Answer test examples", elem_id="lopt-answer")
    reading = gr.Markdown("", elem_id="lopt-ans-reading")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="lopt-ans-table")

    def on_answer(run_ids, k_, q, token=None, request: gr.Request = None):
        mine = {r["run_id"] for r in choices(token, request)}
        run_ids = [i for i in (run_ids or []) if i in mine]
        try:
            a = answer_table(ctx.store, bank, run_ids, k_, q or "", default_model(ctx.limits))
        except LoptError as e:
            raise ui_error(e) from None
        import pandas as pd
        head = f"**{a.task}** ({a.kind.replace('_', ' ')}) — {a.reading()}"
        return head, pd.DataFrame(a.rows())

    answer.click(on_answer, ctx.inputs(runs, k, question), [reading, table], api_name="answers")

    def choices(token=None, request=None):
        rows = [r for r in ctx.runs(request, token, states=("done", "stopped"))
                if r["method"] in METHODS and not METHODS[r["method"]].changes_model and r.get("artifact_dir")]
        return rows

    def on_show(sel, token=None, request: gr.Request = None):
        rows = choices(token, request)
        ids = {r["run_id"] for r in rows}
        return gr.update(choices=run_choices(rows), value=[s for s in (sel or []) if s in ids])

    return {"runs": runs, "on_show": on_show, "bank": bank}
