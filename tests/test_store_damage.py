"""A store that cannot be used stops the CLI and the app with one line naming the file and what to do, before
anything else happens: a damaged, half-truncated or non-sqlite runs.sqlite, or a read-only one."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import ROOT
from lopt_core.config import RunConfig
from lopt_core.errors import StoreError
from lopt_core.store.sqlite import Store


def _good_store(home) -> None:
    store = Store(home / "runs.sqlite")
    store.create("run", RunConfig())
    store.add_metric_rows([("run", i, "loss", 0.5, None, None) for i in range(3000)])  # pages to cut
    del store
    for suffix in ("-wal", "-shm"):
        (home / f"runs.sqlite{suffix}").unlink(missing_ok=True)


def _cli(home, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lopt_core", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "LOPT_HOME": str(home)}, timeout=120)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty-header"])
def test_a_damaged_store_is_one_line_naming_the_file(lopt_home, damage):
    lopt_home.mkdir(parents=True, exist_ok=True)
    db = lopt_home / "runs.sqlite"
    if damage == "garbage":
        db.write_text("this is not a database\n" * 10)
    else:
        _good_store(lopt_home)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\0" * 100 + data[100:])
    with pytest.raises(StoreError, match="runs.sqlite is damaged or not a LoPT Lab store"):
        Store()
    r = _cli(lopt_home, "list")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "runs.sqlite" in lines[-1] and "move it aside" in lines[-1]


def test_the_app_stops_in_one_line_on_a_damaged_store(lopt_home):
    lopt_home.mkdir(parents=True, exist_ok=True)
    (lopt_home / "runs.sqlite").write_bytes(b"SQLite format 3\0" + b"\xff" * 200)
    r = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LOPT_HOME": str(lopt_home), "GRADIO_SERVER_PORT": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("lopt: ") and "runs.sqlite" in r.stderr


def test_a_read_only_store_is_found_at_start(tmp_path):
    """A read-only bind mount (root can write any file whatever its mode bits, but not on a read-only mount)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    Store(rw / "runs.sqlite")
    mounted = subprocess.run(["mount", "--bind", str(rw), str(ro)], capture_output=True).returncode == 0 and \
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode == 0
    if not mounted:
        subprocess.run(["umount", str(ro)], capture_output=True)
        pytest.skip("cannot make a read-only mount here (needs root and mount rights)")
    try:
        with pytest.raises(StoreError, match="is read-only .*make it and its folder writable"):
            Store(ro / "runs.sqlite")
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
