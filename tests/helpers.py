"""What several test files share: starting the app on a free port, a tiny run config, seeded runs, the browser,
and the rule that CI never skips for a missing tool (CI=true: .ci/run installs chromium and starts Docker).
No test file imports another test file; they import this."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lopt_core import share
from lopt_core.config import RunConfig

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_unless_ci(reason: str) -> None:
    """Skip with the reason, except under CI, where a missing tool is a failure (.ci/run provides it)."""
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


ROOT = Path(__file__).resolve().parents[1]

TRAIN = dict(task="sst2", method="lopt1", n=4, r=2, steps=4, batch_size=2, lr="", eval_every=2, seed=0,
             eval_size=8, upload=None, text_column="text", text_b_column="", label_column="label")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_home(home: Path) -> None:
    """Reuse the already dequantized offline default, so the app starts in seconds."""
    from lopt_core.lm.models import offline_default_folder
    src = offline_default_folder()
    (home / "models").mkdir(parents=True, exist_ok=True)
    dst = home / "models" / src.name
    if not dst.exists():
        os.symlink(src, dst)


def start_app(home: Path, extra_env: dict | None = None):
    port = free_port()
    env = {**os.environ, "LOPT_HOME": str(home), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           **(extra_env or {})}
    log = open(home / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < 90:
        if proc.poll() is not None:
            raise RuntimeError("app exited early:\n" + (home / "app.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("app did not start in 90 s:\n" + (home / "app.log").read_text())


def assert_screenshots(*names: str) -> None:
    """Each named screenshot was saved under test-artifacts/ and holds a page (not a blank image)."""
    for name in names:
        assert (ART / f"{name}.png").stat().st_size > 10_000, name


def stop_app(proc) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def tiny_cfg(model: str, **kw) -> RunConfig:
    base = dict(model=model, task="sst2", method="lopt1", n=4, r=2, steps=3, batch_size=2, eval_every=0,
                eval_size=8, eval_batch_size=8, max_length=64, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def seed_runs(home, tiny: str, stopped: bool = False) -> dict:
    """A finished LoPT-1 (n=6, r=2) and prompt-tuning run on the tiny model, in `home`'s store."""
    import os
    from lopt_core.config import RunConfig
    from lopt_core.training.runs import run_and_record
    old = os.environ.get("LOPT_HOME")
    os.environ["LOPT_HOME"] = str(home)
    try:
        ids = {}
        for method in ("lopt1", "prompt_tuning"):
            cfg = RunConfig(model=tiny, task="sst2", method=method, n=6, r=2, steps=3, batch_size=2,
                            eval_every=0, eval_size=16, eval_batch_size=8, max_length=64, device="cpu")
            ids[method] = run_and_record(cfg)["run_id"]
        if stopped:  # a run stopped twice at step 1: it ended without its closing evaluation
            from lopt_core.store.sqlite import Store
            store = Store()
            store.create("stopped-1", cfg, state="running")

            def stop_twice(ev):
                if ev["type"] == "step":
                    store.request_stop("stopped-1")
                    store.request_stop("stopped-1")
            run_and_record(cfg, stop_twice, store=store, run_id="stopped-1")
            ids["stopped"] = "stopped-1"
    finally:
        os.environ["LOPT_HOME"] = old or ""
    return ids


CHROMIUM = "/usr/bin/chromium"
ART = Path(__file__).resolve().parents[1] / "test-artifacts"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not IN_CI,  # under CI a missing browser fails the test instead (open_page)
    reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")


def open_page(p, url: str):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"CI=true: {CHROMIUM} is missing (.ci/run installs Debian's chromium)")
    """Debian chromium, headless, with the flags this closed network needs; the app's page loaded."""
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    return browser, page


def long_run_link(url: str, model: str) -> str:
    """A link to the Train tab set for a run long enough to be caught and stopped (tiny model, small eval)."""
    settings = dict(model=model, task="sst2", method="lopt1", n=4, r=2, steps=3000, batch_size=2, lr="",
                    eval_every=0, eval_size=8, seed=0)
    return f"{url}?{share.settings_to_query(settings)}"


