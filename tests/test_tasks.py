"""Offline data and user files: real sources, no leakage, clear errors for bad files."""
from __future__ import annotations

import pytest

from lopt_core.data import tasks
from lopt_core.data.tasks import TaskError, _alnum_key, load_task, load_user_file


def test_sst2_offline_is_real_and_leak_free():
    d = load_task("sst2")
    assert len(d.test) == 872, "the whole SST-2 validation set is the test set"
    assert len(d.train) > 7000
    held_out = {_alnum_key(e.text) for e in d.test}
    assert not any(_alnum_key(e.text) in held_out for e in d.train)
    # the removal really removed something: MR holds most SST-2 validation sentences
    assert len(d.train) < 8530 - 500
    assert {e.label for e in d.train} == {0, 1}
    assert d.test[0].text.startswith("Review: ") and d.test[0].text.endswith("\nSentiment:")


@pytest.mark.parametrize("name,classes", [("rte", 2), ("cb", 3), ("copa", 2), ("boolq", 2), ("mrpc", 2)])
def test_validation_only_tasks_split_deterministically(name, classes):
    a, b, c = load_task(name, seed=0), load_task(name, seed=0), load_task(name, seed=1)
    assert [e.text for e in a.test] == [e.text for e in b.test]
    assert [e.text for e in a.test] != [e.text for e in c.test]
    assert not {e.text for e in a.test} & {e.text for e in a.train}
    assert a.num_classes == classes and max(e.label for e in a.train) < classes


def test_online_only_task_offline_names_what_works():
    with pytest.raises(TaskError, match="not available offline; offline you can use: sst2"):
        load_task("ag_news")
    with pytest.raises(TaskError, match="unknown task"):
        load_task("nope")


def test_user_csv_maps_labels_to_words(sentiment_csv):
    d = load_user_file(str(sentiment_csv))
    assert d.task.label_words == (" neg", " pos")
    assert len(d.train) + len(d.test) == 60
    d2 = load_user_file(str(sentiment_csv), label_words=[" bad", " good"])
    assert d2.task.label_words == (" bad", " good")


def test_user_jsonl_pairs(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text("\n".join('{"a": "x%d", "b": "y", "y": %d}' % (i, i % 2) for i in range(10)))
    d = load_user_file(str(p), text_column="a", text_b_column="b", label_column="y")
    assert "\ny\n" in d.train[0].text and d.num_classes == 2


@pytest.mark.parametrize("content,kwargs,msg", [
    (b"", {}, "is empty"),
    (b"text,label\n", {}, "has no rows"),
    (b"words,label\nhi,1\nho,0\n", {}, r"lacks column\(s\) \['text'\]"),
    (b"text,label\na,1\nb,1\nc,1\nd,1\n", {}, "only one class"),
    (b"text,label\n\xff\xfe bad,1\n", {}, "not UTF-8"),
    (b"text,label\na,1\nb,0\nc,1\nd,0\n", {"label_words": [" x"]}, "2 classes"),
])
def test_bad_user_files_get_clear_errors(tmp_path, content, kwargs, msg):
    p = tmp_path / "data.csv"
    p.write_bytes(content)
    with pytest.raises(TaskError, match=msg):
        load_user_file(str(p), **kwargs)


def test_bad_jsonl_line_and_size_and_suffix(tmp_path, monkeypatch):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": 1}\nnot json\n')
    with pytest.raises(TaskError, match="line 2 is not valid JSON"):
        load_user_file(str(p))
    monkeypatch.setattr(tasks, "MAX_FILE_BYTES", 10)
    with pytest.raises(TaskError, match="the limit is"):
        load_user_file(str(p))
    with pytest.raises(TaskError, match="must be .csv"):
        (tmp_path / "d.txt").write_text("x")
        load_user_file(str(tmp_path / "d.txt"))
    with pytest.raises(TaskError, match="does not exist"):
        load_user_file(str(tmp_path / "missing.csv"))


def test_hub_source_offline_is_a_clear_error():
    with pytest.raises(TaskError, match="hub does not answer"):
        load_task("sst2", source="hub")


def test_every_seed_of_a_task_sees_the_same_test_set(sentiment_csv, tiny_model_dir):
    """Issue 10: the split is fixed per task (split_seed, recorded); the run seed changes only initialisation and
    batch order, so two seeds of one configuration are scored on the same examples and pool on the plots."""
    from lopt_core.analysis import aggregate
    from lopt_core.config import RunConfig
    from lopt_core.training.runs import run_and_record
    from lopt_core.store.sqlite import Store
    for task in ("rte", "file"):
        kw = dict(task=task, data_file=str(sentiment_csv) if task == "file" else None)
        a, b = (tasks.load_for_config(RunConfig(seed=s, **kw)) for s in (0, 7))
        assert [e.text for e in a.test] == [e.text for e in b.test]
        other = tasks.load_for_config(RunConfig(seed=0, split_seed=1, **kw))
        assert tasks.fingerprint(other.test) != tasks.fingerprint(a.test)
    store = Store()
    res = [run_and_record(RunConfig(model=tiny_model_dir, task="file", data_file=str(sentiment_csv), method="lopt1",
                                    n=4, r=2, steps=2, batch_size=2, eval_every=0, eval_size=0, seed=s,
                                    device="cpu", max_length=64), store=store) for s in (0, 1)]
    assert res[0]["test_fingerprint"] == res[1]["test_fingerprint"] and res[0]["split_seed"] == 0
    pts = aggregate.points(store.list())
    assert len(pts) == 1 and pts[0].seeds == 2 and len(pts[0].test_sets) == 1
