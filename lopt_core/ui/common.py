"""What every tab shares: the app context (job manager, host limits), choice lists and the runs table."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lopt_core.analysis.tables import run_records
from lopt_core.hosting import owners
from lopt_core.hosting.links import Links
from lopt_core.hosting.limits import Limits
from lopt_core.jobs.manager import JobManager
from lopt_core.methods import METHODS
from lopt_core.plots.figures import method_label

ASSETS = Path(__file__).resolve().parents[2] / "assets"
STATUS_TICK_S = 2.0  # the Sweep, Rank and Runs tabs' Timers (a status line, a sweep's curves): every 2 s is enough,
                     # and halves what their open pages ask of the server; the Train tab's progress ticks every 1 s
STATE_ICONS = {"queued": "⏳ queued", "running": "▶ running", "done": "✔ done", "stopped": "■ stopped",
               "failed": "✖ failed", "interrupted": "⚠ interrupted"}


@dataclass
class AppContext:
    jobs: JobManager
    limits: Limits
    token: object = None  # the page's gr.BrowserState holding the visitor's token (public hosts), made by the app
    secret: str | None = None  # the host's secret (owners.host_secret): only tokens it signed identify a visitor
    links: Links = field(default_factory=Links)  # one-time download links, served by app.py's route

    @property
    def store(self):
        return self.jobs.store

    def visitor(self, request=None, token=None) -> owners.Visitor:
        """Who sent this request (owners.LOCAL when the host is not public)."""
        return owners.visitor(self.limits.public, self.limits.show_others, username=signed_in(request),
                              token=token, session=getattr(request, "session_hash", None) if request else None,
                              secret=self.secret)

    def runs(self, request=None, token=None, **filters) -> list[dict]:
        """The runs this request's visitor may see."""
        who = self.visitor(request, token)
        return who.visible(self.store.list(**filters, **who.query()))  # filtered in SQL, then checked row by row

    def link_to(self, path, request) -> str:
        """A one-time link (markdown) to the file at `path` for this request's page only (hosting/links.py)."""
        url = self.links.issue(path, getattr(request, "session_hash", None))
        return (f"[⬇ {Path(path).name}]({url}) · sent to this page only; it works once, within "
                f"{int(self.links.ttl_s // 60)} minutes")

    def inputs(self, *components) -> list:
        """A handler's inputs plus the visitor token, when the page has one (handlers take `token=None` last)."""
        return [*components, self.token] if self.token is not None else list(components)


def signed_in(request) -> str | None:
    """The account a request is signed in with: a Space's "Sign in with Hugging Face" (hf_oauth: true), else
    the app's own login (launch(auth=...)); None when not signed in."""
    if request is None:
        return None
    try:
        info = request.session.get("oauth_info") or {}  # Starlette's session, set by Gradio's OAuth routes
    except Exception:  # noqa: BLE001  no session middleware: not a Space with OAuth
        info = {}
    return (info.get("userinfo") or {}).get("preferred_username") or getattr(request, "username", None)


def visitor_token_store(secret: str) -> object:
    """The browser-side store of a visitor's token, encrypted with the host's secret (owners.host_secret), so
    the token survives a server restart (Gradio's default secret is new at every start)."""
    import gradio as gr
    return gr.BrowserState(None, storage_key="lopt-visitor", secret=secret)


def token_for(secret: str):
    """The page load's handler: the token the browser holds when this server signed it, else a new one."""
    def new_token(token):
        return token if owners.token_is_ours(token, secret) else owners.mint_token(secret)
    return new_token


def asset_text(name: str, default: str = "") -> str:
    p = ASSETS / name
    return p.read_text(encoding="utf-8") if p.is_file() else default


def model_choices(limits: Limits) -> list[tuple[str, str]]:
    from lopt_core.hosting import model_access
    from lopt_core.lm.models import KNOWN_MODELS, available_offline, hub_reachable
    names = list(model_access.allowed_names(limits) or KNOWN_MODELS)
    offline, hub = set(available_offline()), hub_reachable()
    probe = model_access.may_probe(limits)  # a public host never looks at the disk for a name
    out = []
    for m in names:
        if m in offline or (probe and Path(m).is_dir()):
            out.append((f"{m}  ·  offline ✓", m))
        else:
            out.append((f"{m}  ·  {'from the Hugging Face Hub' if hub else 'needs the Hugging Face Hub (offline ✗)'}", m))
    return out


def model_picker_args(limits: Limits) -> dict:
    """The model picker's typing rule and hint: a local host may name any folder; a public host only its list."""
    if limits.public or limits.allowed_models is not None:
        return dict(allow_custom_value=False, info="offline ✓ = works with no network; the models this host allows")
    return dict(allow_custom_value=True, info="offline ✓ = works with no network; or type a local model folder")


def default_model(limits: Limits) -> str:
    from lopt_core.lm.models import OFFLINE_DEFAULT, available_offline
    names = list(limits.allowed_models) if limits.allowed_models else [OFFLINE_DEFAULT]
    off = [m for m in names if m in available_offline()]
    return (off or names)[0]


def task_choices() -> list[tuple[str, str]]:
    from lopt_core.lm.models import hub_reachable
    from lopt_core.data.tasks import TASKS, offline_tasks
    offline, hub = set(offline_tasks()), hub_reachable()
    out = []
    for name, t in TASKS.items():
        where = "offline ✓" if name in offline else ("from the Hub" if hub else "needs the Hub (offline ✗)")
        out.append((f"{name}  ·  {t.kind.replace('_', ' ')}  ·  {t.description}  ·  {where}", name))
    out.append(("Upload your own CSV/JSONL", "file"))
    return out


def method_choices() -> list[tuple[str, str]]:
    return [(cls.label, name) for name, cls in METHODS.items()]


def fmt_seconds(s) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s < 3600 else f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


RUN_COLUMNS = ["run", "state", "model", "task", "method", "n", "r", "trainable params", "accuracy",
               "zero-shot accuracy", "time (s)", "steps", "created"]


def runs_dataframe(rows: list[dict]) -> pd.DataFrame:
    """The runs table as the page shows it: tables.run_records (what `list --csv` writes), relabelled and rounded."""
    recs = [{"run": t["run_id"], "state": STATE_ICONS.get(t["state"], t["state"]), "model": t["model"],
             "task": t["task"], "method": method_label(t["method"]), "n": t["n"], "r": t["r"],
             "trainable params": t["trainable_params"], "accuracy": _rounded(t["score"]),
             "zero-shot accuracy": _rounded(t["zero_shot"]), "time (s)": t["train_seconds"],
             "steps": f"{t['steps_done'] or 0}/{'?' if t['steps'] is None else t['steps']}", "created": t["created"]}
            for t in run_records(rows)]
    return pd.DataFrame(recs, columns=RUN_COLUMNS)


def _rounded(x):
    return None if x is None else round(x, 4)


def run_choices(rows: list[dict], states=None) -> list[tuple[str, str]]:
    from lopt_core.analysis.aggregate import config_label, task_label
    from lopt_core.analysis.run_summary import outcome
    out = []
    for r in sorted(rows, key=lambda r: r["created"], reverse=True):
        if states and r["state"] not in states:
            continue
        out.append((f"{r['run_id']} · {config_label(r['method'], r['n'], r['r'])} · {task_label(r)} · {outcome(r)}",
                    r["run_id"]))
    return out


def reference_rows(show: bool, task=None, model=None, shown=()) -> list[dict] | None:
    """The atlas's runs of this task as store-like rows when they belong beside `shown`
    (aggregate.matching_reference); None when hidden, missing or about another task or model."""
    from lopt_core.analysis import aggregate
    from lopt_core.sweeps import results_file
    rows = results_file.atlas_rows() if show else []
    return aggregate.matching_reference(rows, task, model, list(shown)) if rows else None


def atlas_figure(task: str | None, model: str | None):
    """What the atlas measured for the task and model a Train form has chosen: the trade-off as a first visit
    sees it, or a line saying the atlas has no sweep of them (the CLI's `atlas` prints the same runs)."""
    from lopt_core.plots import figures as plots
    from lopt_core.sweeps import results_file
    title = f"Atlas: {task} on {model}"
    try:
        ref = reference_rows(True, task, model) if task and model else None
    except Exception:  # noqa: BLE001  (an unknown model name typed in: the form's own readout says why)
        ref = None
    if not ref:
        have = ", ".join(results_file.atlas_tasks()) or "none"
        return plots.empty_figure(f"the shipped atlas has no sweep of this task and model<br>(it holds: {have})",
                                  title)
    return plots.tradeoff_figure([], title=title + f" · {results_file.atlas_machine()}", reference=ref)
