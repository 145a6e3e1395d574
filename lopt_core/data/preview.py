"""A user file checked and previewed before training: its first rows, class counts, the train/test sizes of the
fixed split, and the label words the run will use with how each one's first token reads.

Reading a large file is GIL-heavy (10^6 rows: seconds of pandas and dict building), so a file above
IN_PROCESS_BYTES is read in a child process (`python -m lopt_core.data.preview`, which imports only what reading
needs) that reports the rows read so far as JSON lines; the server's threads keep answering meanwhile. The facts of a file are cached by its content, so the Train button's preflight after
a preview (and the rerun of a run) does not read it again. The app, `python -m lopt_core preview` and preflight
all call preview().
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from lopt_core.data.tasks import TaskError

IN_PROCESS_BYTES = 1 << 20   # smaller files are read in the calling process (a child costs ~1 s to start)
HEAD_ROWS, HEAD_CHARS = 5, 80


@dataclass(frozen=True)
class FileFacts:
    """What reading a file tells, with no tokenizer: the same for every model."""
    name: str
    columns: tuple[str, ...]
    head: tuple[tuple[str, ...], ...]   # the first usable rows of the text (and second text) and label columns
    head_columns: tuple[str, ...]
    labels: tuple[str, ...]             # the classes, in their fixed order
    counts: tuple[int, ...]             # examples per class
    rows: int                           # usable rows
    train_size: int
    test_size: int


@dataclass(frozen=True)
class Preview:
    facts: FileFacts
    label_words: tuple[str, ...] = ()
    first_tokens: tuple[str, ...] = ()
    rule: str = ""                      # label_words.LabelWords.rule
    words_problem: str = ""             # why the label words cannot be used (then the run is refused)
    words_note: str = ""                # why they could not be checked here (the run itself will check them)

    def markdown(self) -> str:
        f = self.facts
        lines = [f"**{f.name}**: {f.rows:,} usable rows → {f.train_size:,} train / {f.test_size:,} test "
                 f"(fixed split)", "", "| class | examples | label word | scored by token |", "|---|---|---|---|"]
        words = self.label_words or ("",) * len(f.labels)
        tokens = self.first_tokens or ("",) * len(f.labels)
        for label, count, w, t in zip(f.labels, f.counts, words, tokens):
            lines.append(f"| {_cell(label)} | {count:,} | `{w!r}` | `{t!r}` |" if w else
                         f"| {_cell(label)} | {count:,} | | |")
        if self.words_problem:
            lines += ["", f"⚠️ **Label words:** {self.words_problem}"]
        elif self.words_note:
            lines += ["", f"Label words: {self.words_note}"]
        elif self.rule:
            lines += ["", f"Label words: {RULES[self.rule]}."]
        return "\n".join(lines)


RULES = {"labels": "the labels themselves (each starts with its own token)",
         "numbers": "number words (the numeric labels share their first token)",
         "letters": "letters (the labels share their first tokens)",
         "given": "yours, checked against the model's tokenizer"}


def _cell(text) -> str:
    s = str(text).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= HEAD_CHARS else s[:HEAD_CHARS - 1] + "…"


def read_facts(path: str, text_column: str, label_column: str, text_b_column: str | None, seed: int = 0,
               on_rows=None) -> FileFacts:
    """Read and check the file here, in this process (tasks.read_user_file), and summarise it."""
    from lopt_core.data.tasks import read_user_file, split_sizes
    f = read_user_file(path, text_column, label_column, text_b_column, on_rows)
    shown = tuple(c for c in (text_column, text_b_column, label_column) if c)
    counts = Counter(str(r[label_column]).strip() for r in f.rows)
    train, test = split_sizes(len(f.rows))
    head = tuple(tuple(_cell(r.get(c, "")) for c in shown) for r in f.rows[:HEAD_ROWS])
    return FileFacts(f.name, tuple(f.columns), head, shown, tuple(f.labels), tuple(counts[l] for l in f.labels),
                     len(f.rows), train, test)


def _child_main(argv: list[str]) -> None:
    """The child's side: read the file named by the JSON arguments, printing {"rows": n} as it goes, then
    {"facts": ...} or {"error": message}, one JSON object a line."""
    def say(obj):
        print(json.dumps(obj), flush=True)
    args = json.loads(argv[0])
    try:
        say({"facts": dataclasses.asdict(read_facts(*args, on_rows=lambda n: say({"rows": n})))})
    except TaskError as e:
        say({"error": str(e)})
    except Exception as e:  # noqa: BLE001  (anything else a strange file raises: named, never a traceback)
        say({"error": f"{Path(args[0]).name} could not be read: {type(e).__name__}: {e}"})


def _facts_from_json(f: dict) -> FileFacts:
    lists = {k: tuple(f[k]) for k in ("columns", "head_columns", "labels", "counts")}
    return FileFacts(**{**f, **lists, "head": tuple(tuple(row) for row in f["head"])})


def _read_in_child(args: tuple, on_rows) -> FileFacts:
    """read_facts(*args) in a child process, hearing its progress; the GIL-heavy parse never runs here."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds lopt_core/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty child can never block on it
    proc = subprocess.Popen([sys.executable, "-m", "lopt_core.data.preview", json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=err, text=True, env=env)
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if "rows" in msg:
                on_rows(msg["rows"])
            elif "error" in msg:
                raise TaskError(msg["error"])
            else:
                return _facts_from_json(msg["facts"])
        proc.wait(5)
        err.seek(0)
        raise TaskError(f"checking {Path(args[0]).name} failed: its reader process ended with exit code "
                        f"{proc.returncode}: {err.read()[-300:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err.close()


_cache: dict[tuple, FileFacts] = {}
_cache_lock = threading.Lock()


def content_key(path: str) -> str:
    """A file's content hash (its facts are cached by it; kept uploads are named by it)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_facts(path: str, text_column: str = "text", label_column: str = "label",
               text_b_column: str | None = None, seed: int = 0, on_rows=None) -> FileFacts:
    """The file's facts, cached by its name and content; a large file is read in a child process.
    on_rows(n) hears the rows read so far. Raises TaskError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"data file {p.name!r} does not exist")
    args = (str(p), text_column, label_column, text_b_column or None, seed)
    key = (p.name, content_key(str(p)), *args[1:])
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    report = on_rows or (lambda n: None)
    facts = read_facts(*args, on_rows=report) if p.stat().st_size <= IN_PROCESS_BYTES \
        else _read_in_child(args, report)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = facts
    return facts


def preview(path: str, text_column: str = "text", label_column: str = "label", text_b_column: str | None = None,
            model: str | None = None, label_words=None, seed: int = 0, on_rows=None) -> Preview:
    """The file's facts and the label words a run on `model` would use (derived, or the given ones checked).
    A file that cannot be trained raises TaskError; label words that cannot be used are in words_problem."""
    from lopt_core.data.label_words import choose, tokenizer_for
    facts = file_facts(path, text_column, label_column, text_b_column, seed, on_rows)
    if model is None:
        return Preview(facts)
    try:
        chosen = choose(facts.labels, tokenizer_for(model), label_words)
    except TaskError as e:
        return Preview(facts, words_problem=str(e))
    except Exception as e:  # noqa: BLE001  (the model's tokenizer cannot be loaded: the run will say why)
        from lopt_core.hosting.safe_errors import scrub
        return Preview(facts, words_note=f"not checked here: the tokenizer of {model!r} could not be loaded "
                                         f"({scrub(str(e))})")
    return Preview(facts, chosen.words, chosen.first_tokens, chosen.rule)


@dataclass
class Checking:
    """A preview under way in a background thread: rows_read grows while the file is read."""
    name: str
    future: Future = field(default_factory=Future)
    rows_read: int = 0

    def line(self) -> str:
        return f"checking {self.name}: {self.rows_read:,} rows read…" if self.rows_read else f"checking {self.name}…"


def start(path: str, *args, name: str | None = None, **kwargs) -> Checking:
    """preview(path, *args, **kwargs) in a daemon thread (the parse itself in a child for a large file)."""
    job = Checking(name or Path(path).name)

    def work():
        try:
            job.future.set_result(preview(path, *args, on_rows=lambda n: setattr(job, "rows_read", n), **kwargs))
        except BaseException as e:  # noqa: BLE001  (handed to whoever waits on the future)
            job.future.set_exception(e)
    threading.Thread(target=work, name="lopt-preview", daemon=True).start()
    return job


if __name__ == "__main__":
    _child_main(sys.argv[1:])
