"""Any sensible user file trains: label words derived for the run's tokenizer (numbers, multi-token labels),
any column name, braces in the texts, a preview before training, bad label words refused before queuing,
large files read in a child process with progress, uploads kept only once valid and removed with their last run."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from lopt_core.data import label_words as lw
from lopt_core.data import preview as pv
from lopt_core.data import uploads
from lopt_core.training import runs
from lopt_core.config import ConfigError, RunConfig
from lopt_core.training.checks import check
from lopt_core.store.sqlite import Store
from lopt_core.data.tasks import TaskError, load_user_file, read_user_file


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    import csv
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def labelled(path: Path, labels: list, header=("text", "label"), n: int = 40) -> Path:
    return write_csv(path, list(header), [[f"review {{{i}}} number [{i}] of {labels[i % len(labels)]}",
                                           labels[i % len(labels)]] for i in range(n)])


# ---------------------------------------------------------------- deriving and checking label words

@pytest.mark.parametrize("labels,words,rule", [
    (["neg", "pos"], (" neg", " pos"), "labels"),
    (["0", "1"], (" zero", " one"), "numbers"),                     # " 0" and " 1" both start with " "
    ([str(i) for i in range(1, 11)], tuple(" " + w for w in lw.NUMBER_WORDS[1:11]), "numbers"),
    (["New Jersey", "New York"], (" A", " B"), "letters"),          # both start with " New"
    ([f"c{i}" for i in range(15)], tuple(f" {c}" for c in "ABCDEFGHIJKLMNO"), "letters"),
    (["3", "25"], (" A", " B"), "letters"),                         # 25 has no number word
])
def test_derived_words_start_with_distinct_tokens(smol_tokenizer, labels, words, rule):
    chosen = lw.choose(labels, smol_tokenizer)
    assert (chosen.words, chosen.rule) == (words, rule)
    ids = lw.first_tokens(chosen.words, smol_tokenizer)
    assert len(set(ids)) == len(labels)
    assert chosen.first_tokens == tuple(smol_tokenizer.decode([i]) for i in ids)


def test_given_words_are_checked_tokenized(smol_tokenizer):
    with pytest.raises(TaskError, match=r"' New York' and ' New Jersey' both start with the token ' New'.*"
                                        r"e\.g\. zero, one"):
        lw.choose(["0", "1"], smol_tokenizer, [" New York", " New Jersey"])
    with pytest.raises(TaskError, match=r"3 label words \[' x', ' y', ' z'\] for 2 classes \['0', '1'\]"):
        lw.choose(["0", "1"], smol_tokenizer, lw.parse("x, y,z"))
    assert lw.choose(["0", "1"], smol_tokenizer, lw.parse("bad, good")).words == (" bad", " good")
    assert lw.show(lw.parse(" bad ,good")) == "bad, good"


def test_file_with_numbers_odd_columns_and_braces_loads(tmp_path, smol_tokenizer):
    p = labelled(tmp_path / "stars.csv", list(range(1, 11)), header=("review.text", "{stars}"))
    d = load_user_file(str(p), "review.text", "{stars}", tokenizer=smol_tokenizer)
    assert d.task.label_words[:3] == (" one", " two", " three") and d.num_classes == 10
    assert any("{" in e.text and "[" in e.text for e in d.train)  # the texts' braces survive the template
    assert "label words" in d.source and "(numbers)" in d.source
    p2 = write_csv(tmp_path / "digits.csv", ["0", "1", "2"], [[f"a {i}", f"b {i}", i % 2] for i in range(12)])
    pair = load_user_file(str(p2), "0", "2", text_b_column="1", tokenizer=smol_tokenizer)
    assert pair.train[0].text.startswith("a ") and "\nb " in pair.train[0].text
    assert pair.task.label_words == (" zero", " one")


def test_preflight_refuses_bad_words_naming_the_file(tmp_path, tiny_model_dir):
    p = labelled(tmp_path / "reviews.csv", [0, 1])
    cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(p), method="prompt_tuning", n=2,
                    label_words=lw.parse("New York, New Jersey"))
    with pytest.raises(ConfigError, match=r"reviews.csv: label words ' New York' and ' New Jersey' both start"):
        check(cfg)
    cfg.label_words = None
    check(cfg)  # derived words pass


def test_run_task_of_a_file_is_the_task_the_run_trains_on(tmp_path, tiny_model_dir):
    from lopt_core.analysis.run_summary import run_task
    from lopt_core.data.tasks import load_for_config
    p = labelled(tmp_path / "stars.csv", list(range(1, 6)), header=("a.b", "{y}"))
    for words in (None, lw.parse("v, w, x, y, z")):
        cfg = RunConfig(model=tiny_model_dir, task="file", data_file=str(p), text_column="a.b", label_column="{y}",
                        label_words=words)
        assert run_task(cfg) == load_for_config(cfg).task


# ---------------------------------------------------------------- preview, large files off the request path

def test_preview_shows_classes_split_and_words(tmp_path, tiny_model_dir):
    p = labelled(tmp_path / "ratings.csv", [1, 2, 10], n=30)
    out = pv.preview(str(p), model=tiny_model_dir)
    f = out.facts
    assert f.labels == ("1", "2", "10") and f.counts == (10, 10, 10)   # numbers in numeric order
    assert (f.rows, f.train_size, f.test_size) == (30, 18, 12)
    assert f.head_columns == ("text", "label") and len(f.head) == pv.HEAD_ROWS
    assert out.label_words == (" one", " two", " ten") and out.first_tokens == out.label_words
    md = out.markdown()
    assert "ratings.csv" in md and "18 train / 12 test" in md and "' ten'" in md and "number words" in md
    bad = pv.preview(str(p), model=tiny_model_dir, label_words=lw.parse("a, b"))
    assert "3 classes" in bad.words_problem and "⚠️" in bad.markdown()


def test_large_file_is_read_in_a_child_with_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(pv, "IN_PROCESS_BYTES", 0)         # every file counts as large here
    monkeypatch.setattr("lopt_core.data.tasks.PROGRESS_EVERY", 1000)
    p = labelled(tmp_path / "big.csv", ["neg", "pos"], n=5000)
    job = pv.start(str(p))
    facts = job.future.result(timeout=120).facts
    assert facts.rows == 5000 and facts.train_size == 4500
    assert job.rows_read == 5000, "the child reported the rows it read"
    bad = write_csv(tmp_path / "bad.csv", ["text", "label"], [["x", 1]] * 5)
    with pytest.raises(TaskError, match=r"bad.csv: column 'label' has only one class"):
        pv.file_facts(str(bad))


# ---------------------------------------------------------------- uploads live as long as their runs

def test_upload_is_removed_with_its_last_run(tmp_path):
    src = labelled(tmp_path / "reviews.csv", ["neg", "pos"])
    kept = uploads.keep(str(src))
    assert Path(kept).name == "reviews.csv" and uploads.keep(str(src)) == kept  # kept once, under its own name
    store = Store()
    for rid in ("run-a", "run-b"):
        store.create(rid, RunConfig(task="file", data_file=kept), state="done")
    assert "artifact folder." in runs.delete_run(store, "run-a") and Path(kept).is_file()
    assert "uploaded file reviews.csv" in runs.delete_run(store, "run-b")
    assert not Path(kept).exists() and not Path(kept).parent.exists()
    store.create("run-c", RunConfig(task="file", data_file=str(src)), state="done")
    runs.delete_run(store, "run-c")
    assert src.is_file(), "a file of the user's own disk is never removed"


# ---------------------------------------------------------------- through the app's API

TRAIN = dict(task="file", method="prompt_tuning", n=2, r=1, steps=2, batch_size=2, lr="", eval_every=0, seed=0,
             eval_size=4, label_words="")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    from tests.test_app_e2e import seed_home, start_app, stop_app
    home = tmp_path_factory.mktemp("apphome")
    seed_home(home)
    proc, url = start_app(home)
    yield url, tiny_model_dir, home
    stop_app(proc)


def test_user_files_train_from_the_app(app, tmp_path):
    from gradio_client import Client, handle_file
    url, tiny, home = app
    c = Client(url, verbose=False)
    store = Store(home / "runs.sqlite")
    files = {  # file -> (text column, label column, the label words the preview shows)
        labelled(tmp_path / "binary.csv", [0, 1]): ("text", "label", "zero, one"),
        labelled(tmp_path / "stars.csv", list(range(1, 11)), header=("review.text", "{stars}")):
            ("review.text", "{stars}", "one, two, three, four, five, six, seven, eight, nine, ten"),
        labelled(tmp_path / "cities.csv", ["New York", "New Jersey"], header=("0", "[1]")): ("0", "[1]", "A, B"),
    }
    uploads_dir = home / "uploads"

    path, (text, label, shown) = next(iter(files.items()))
    status, _ = c.predict(**{**TRAIN, "label_words": "New York, New Jersey"}, model=tiny,
                          upload=handle_file(str(path)), text_column=text, text_b_column="", label_column=label,
                          api_name="/train")
    assert "Not started" in status and "binary.csv" in status and "' New'" in status, status
    assert not uploads_dir.exists() or not any(uploads_dir.rglob("*.csv")), "a refused upload was kept"

    run_ids = []
    for path, (text, label, shown) in files.items():
        md, head, words = c.predict(handle_file(str(path)), tiny, text, "", label, api_name="/preview_file")
        head = head.get("value", head)  # an update that also shows the table
        assert path.name in md and "train /" in md and words == shown, (md, words)
        assert head["headers"] == [text, label] and len(head["data"]) == pv.HEAD_ROWS
        status, _ = c.predict(**TRAIN, model=tiny, upload=handle_file(str(path)), text_column=text,
                              text_b_column="", label_column=label, api_name="/train")
        assert "Queued" in status, status
        run_ids.append(status.split("**")[1])
    t0 = time.time()
    while time.time() - t0 < 240 and any(store.get(r)["state"] in ("queued", "running") for r in run_ids):
        time.sleep(1)
    rows = [store.get(r) for r in run_ids]
    assert all(r["state"] == "done" for r in rows), ([(r["state"], r["error"]) for r in rows],
                                                     (home / "app.log").read_text()[-3000:])
    kept = Path(rows[0]["config"]["data_file"])
    assert kept.name == "binary.csv" and kept.is_file()

    *_, msg, _ = c.predict(run_ids[0], api_name="/delete")
    assert "uploaded file binary.csv" in msg and not kept.exists()


def test_blank_labels_are_named_not_counted_as_one_class(tmp_path):
    f = tmp_path / "blank.csv"
    f.write_text("text,label\ngood film,  \nbad film,\t\nfine,   \n")
    with pytest.raises(TaskError, match="column 'label' has no labels: every row's label"):
        read_user_file(str(f))


def test_a_jsonl_line_nested_50000_deep_is_named(tmp_path):
    f = tmp_path / "deep.jsonl"
    f.write_text('{"text": "a", "label": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    with pytest.raises(TaskError, match="deep.jsonl line 1 nests too deeply"):
        read_user_file(str(f))
