"""One check before queuing (training/checks.py): a Train click and a CLI sweep check each configuration once,
and neither the job manager nor the worker nor the loop checks it again."""
from __future__ import annotations

import pytest

from lopt_core import cli
from lopt_core.config import RunConfig
from lopt_core.jobs.manager import JobManager
from lopt_core.store.sqlite import Store
from lopt_core.training import checks
from lopt_core.training.runs import run_and_record
from lopt_core.ui import train as tab



@pytest.fixture
def counted(monkeypatch):
    """Counts of the field check (RunConfig.validate), the shared check and the method check."""
    counts = {"validate": 0, "shared": 0, "method": 0}

    def counting(name, fn):
        def wrapper(*a, **kw):
            counts[name] += 1
            return fn(*a, **kw)
        return wrapper
    monkeypatch.setattr(RunConfig, "validate", counting("validate", RunConfig.validate))
    monkeypatch.setattr(checks, "check_shared", counting("shared", checks.check_shared))
    monkeypatch.setattr(checks, "check_method", counting("method", checks.check_method))
    return counts


def test_a_train_click_checks_its_config_once(counted, tiny_model_dir, monkeypatch):
    started = []
    monkeypatch.setattr(JobManager, "_start", lambda self, row: started.append(row))  # the worker runs below
    jobs = JobManager(start=False)
    try:
        form = dict(model=tiny_model_dir, task="sst2", method="lopt1", n=4, r=2, steps=2, batch_size=2, lr="",
                    eval_every=0, seed=0, eval_size=8, upload=None, text_col="text", text_b_col="",
                    label_col="label")
        run_id = jobs.submit(tab.build_config(None, **form))  # what the Train button's handler does
        assert counted == {"validate": 1, "shared": 1, "method": 1}
        row = started[0]  # what the run's worker process does with the row
        res = run_and_record(RunConfig.from_dict(row["config"]), store=Store(jobs.store_path), run_id=run_id)
        assert res["state"] == "done"
        assert counted == {"validate": 1, "shared": 1, "method": 1}, "the worker and the loop trust the check"
    finally:
        jobs.close()


def test_a_cli_sweep_checks_each_config_once(counted, tiny_model_dir, sentiment_csv, capsys):
    code = cli.main(["sweep", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv),
                     "--methods", "lopt1,ulpt", "--n", "4", "--r", "1,2", "--steps", "2", "--eval-size", "8",
                     "--eval-every", "0", "--batch-size", "2"])
    assert code == 0
    assert counted == {"validate": 4, "shared": 1, "method": 4}


def test_submit_checks_a_plain_config_and_trusts_a_checked_one(counted, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(JobManager, "_start", lambda self, row: None)
    jobs = JobManager(start=False)
    try:
        cfg = RunConfig(model=tiny_model_dir, method="lopt1", n=4, r=2, steps=2, eval_size=8)
        jobs.submit(cfg)
        assert counted["shared"] == 1
        jobs.submit(checks.check(cfg))
        assert counted["shared"] == 2, "check() ran once more, submit did not"
    finally:
        jobs.close()
