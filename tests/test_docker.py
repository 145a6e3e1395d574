"""The Docker image as a Space runs it, built and run: the build context holds only what the image needs
(.dockerignore), the page is served on port 7860 by uid 1000, a 2-step run trains through the API under small host
caps, and the run is still there in a fresh container on the same /data volume (the default LOPT_HOME moves
there). An unusable LOPT_HOME stops the app with one line.

Offline and loopback only: the base is a local Debian bookworm stand-in and pip installs from a `pip download`
folder served on 127.0.0.1 (scripts/docker_test_base.sh, cached in ~/.cache/lopt-docker/); the containers have no
network (--network none) and are driven from inside on 127.0.0.1:7860 with gradio_client.
scripts/docker_daemon.sh starts a daemon (installing Debian's docker.io when root); where none can run here, the
Docker tests skip with the reason. LOPT_TEST_DOCKER=0 skips them too.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lopt_core import paths
from helpers import TRAIN, skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "lopt-lab:test"
BASE = "lopt-test-base:bookworm"
WHEELS = Path(os.environ.get("LOPT_DOCKER_CACHE") or Path.home() / ".cache" / "lopt-docker") / "wheels"
WHEELS_PORT = 18765
CAPS = {"LOPT_MAX_STEPS": "2", "LOPT_MAX_BATCH_SIZE": "2", "LOPT_MAX_EVAL_SIZE": "8", "HF_HUB_OFFLINE": "1"}
RUN = {**TRAIN, "model": "smollm2-135m", "steps": 2, "batch_size": 2, "eval_size": 8, "eval_every": 0}


# ---- LOPT_HOME: no Docker needed ----

def test_home_prefers_lopt_home_then_data_then_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "PERSISTENT_DIR", tmp_path / "data")
    monkeypatch.delenv("LOPT_HOME")
    assert paths.home_path() == Path.home() / ".cache" / "lopt-lab"          # no /data
    (tmp_path / "data").mkdir()
    assert paths.home_path() == tmp_path / "data" / "lopt-home"              # a Space's persistent storage
    if os.geteuid() != 0:                                                     # root writes anywhere
        (tmp_path / "data").chmod(0o500)
        assert paths.home_path() == Path.home() / ".cache" / "lopt-lab"      # /data there but read-only
        (tmp_path / "data").chmod(0o700)
    monkeypatch.setenv("LOPT_HOME", str(tmp_path / "mine"))
    assert paths.check_home() == tmp_path / "mine" and (tmp_path / "mine").is_dir()


def test_unusable_home_is_one_line(monkeypatch, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for home, words in ((f, "is a file, not a folder"), (f / "sub", "cannot be created")):
        monkeypatch.setenv("LOPT_HOME", str(home))
        with pytest.raises(paths.HomeError) as e:
            paths.check_home()
        assert str(e.value).startswith(f"LOPT_HOME={home} ") and words in str(e.value) and "\n" not in str(e.value)
    env = {**os.environ, "LOPT_HOME": str(f), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert r.returncode != 0 and lines == [f"lopt: LOPT_HOME={f} is a file, not a folder"], (r.returncode, lines)


# ---- the image ----

def sh(cmd, timeout, check=True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd[:4]))} ... exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def last_line(r: subprocess.CompletedProcess) -> str:
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit status {r.returncode}"


@pytest.fixture(scope="module")
def docker():
    """A daemon that answers, the stand-in base image and the wheel folder; skip with the reason otherwise.
    A daemon this fixture started is stopped at the end (its images stay in /var/lib/docker as the build cache)."""
    if os.environ.get("LOPT_TEST_DOCKER") == "0":
        pytest.skip("LOPT_TEST_DOCKER=0")
    r = sh(["bash", "scripts/docker_daemon.sh"], 600, check=False)
    if r.returncode:
        skip_unless_ci(f"no Docker daemon here: {last_line(r)}")
    started = re.search(r"started \(pid (\d+)", r.stdout)
    try:
        r = sh(["bash", "scripts/docker_test_base.sh"], 600, check=False, env={**os.environ, "PY": sys.executable})
        if r.returncode:
            skip_unless_ci(f"no base image for the Docker test: {last_line(r)}")
        yield
    finally:
        if started:
            pid = int(started.group(1))
            os.kill(pid, signal.SIGTERM)
            for _ in range(60):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image(docker):
    """`docker build .` of this checkout on the stand-in base, pip reading the wheel folder over 127.0.0.1."""
    old = sh(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], 60, check=False).stdout.strip()
    handler = partial(_Quiet, directory=str(WHEELS))
    try:  # the same WHEELS value every time: a changed build argument would rebuild every layer after it
        server = ThreadingHTTPServer(("127.0.0.1", WHEELS_PORT), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = sh(["docker", "build", "--network", "host", "--force-rm", "--build-arg", f"BASE={BASE}",
                "--build-arg", f"WHEELS=http://127.0.0.1:{server.server_port}/", "-t", IMAGE, "."], 900,
               env={**os.environ, "DOCKER_BUILDKIT": "0"})
    finally:
        server.shutdown()
        server.server_close()
    if old and old not in sh(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], 60).stdout:
        sh(["docker", "image", "rm", old], 120, check=False)  # the previous build's layers, not kept twice
    m = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", r.stdout + r.stderr)
    assert m, (r.stdout + r.stderr)[-2000:]
    size = float(m.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m.group(2)]
    assert size < 5e6, f"the build context is {m.group(1)} {m.group(2)}: .dockerignore lets in more than the image needs"
    return IMAGE


def start(name: str, data: Path, env: dict) -> None:
    sh(["docker", "rm", "-f", name], 120, check=False)
    opts = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
    sh(["docker", "run", "-d", "--name", name, "--network", "none", "-v", f"{data}:/data", *opts, IMAGE], 180)


def py(name: str, code: str, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run Python code inside the container (as its user, uid 1000), on its own loopback."""
    return sh(["docker", "exec", "-i", name, "python", "-", *args], timeout, check=False, input=code)


PAGE = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:7860/', timeout=5).read().decode())"


def wait_page(name: str, timeout: float = 180) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = py(name, PAGE, timeout=30)
        if r.returncode == 0 and "LoPT Lab" in r.stdout:
            return r.stdout
        if sh(["docker", "inspect", "-f", "{{.State.Running}}", name], 30).stdout.strip() != "true":
            break
        time.sleep(2)
    raise AssertionError(f"no page on 7860 in {name}:\n" + sh(["docker", "logs", name], 30).stderr[-3000:])


def listener_uids(name: str, port: int = 7860) -> set[int]:
    """Owners of the sockets listening on `port` in the container (/proc/net/tcp: local address, state, uid)."""
    out = sh(["docker", "exec", name, "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"], 30, check=False)
    rows = [ln.split() for ln in out.stdout.splitlines()[1:]]
    return {int(f[7]) for f in rows if len(f) > 7 and f[1].endswith(f":{port:04X}") and f[3] == "0A"}


TRAIN_SCRIPT = """
import json, sys, time
from gradio_client import Client
cfg = json.loads(sys.argv[1])
c = Client("http://127.0.0.1:7860/", verbose=False)
refused, _ = c.predict(**{**cfg, "steps": 3}, api_name="/train")
status, run_id = c.predict(**cfg, api_name="/train")
run_id = run_id.get("value") if isinstance(run_id, dict) else run_id
t0, progress, err = time.time(), "", ""
while run_id and time.time() - t0 < 300:
    _, progress, err, _ = c.predict(run_id, api_name="/watch")
    if any(w in progress for w in ("done", "failed", "interrupted")):
        break
    time.sleep(1)
print(json.dumps({"refused": refused, "status": status, "run_id": run_id, "progress": progress, "err": str(err)}))
"""


def test_image_serves_trains_and_keeps_runs(image, tmp_path):
    data = tmp_path / "data"           # the Space's persistent storage: writable by the app's user
    data.mkdir()
    os.chown(data, 1000, 1000)
    name = f"lopt-test-{os.getpid()}"
    try:
        start(name, data, CAPS)
        assert "LoPT Lab" in wait_page(name)
        assert listener_uids(name) == {1000}, "port 7860 is not served by uid 1000"
        status = sh(["docker", "exec", name, "cat", "/proc/1/status", "/proc/1/cmdline"], 30).stdout
        assert re.search(r"^Uid:\s+1000\s", status, re.M) and "app.py" in status

        r = py(name, TRAIN_SCRIPT, json.dumps(RUN), timeout=420)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert "LOPT_MAX_STEPS" in out["refused"], out                       # the host cap holds
        run_id = out["run_id"]
        assert run_id and "done" in out["progress"], (out, sh(["docker", "logs", name], 30).stderr[-3000:])
        home = data / "lopt-home"                                            # LOPT_HOME unset: /data wins
        assert (home / "runs.sqlite").exists() and (home / "artifacts" / run_id / "prompt.safetensors").exists()
        assert (home / "runs.sqlite").stat().st_uid == 1000

        sh(["docker", "stop", "-t", "10", name], 60)
        start(name, data, CAPS)                                              # a fresh container, same /data
        wait_page(name)
        r = py(name, "from lopt_core.cli import main; main(['list', '--json'])")
        runs = {x["run_id"]: x for x in json.loads(r.stdout.strip().splitlines()[-1])}
        assert runs.get(run_id, {}).get("state") == "done", (runs, r.stderr[-2000:])
        assert runs[run_id]["accuracy"] is not None

        r = sh(["docker", "exec", "-e", "LOPT_HOME=/", name, "python", "app.py"], 120, check=False)
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
        assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("lopt: LOPT_HOME=/ is not writable"), lines
    finally:
        sh(["docker", "rm", "-f", name], 120, check=False)
