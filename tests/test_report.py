"""--report-to tensorboard (training/report.py): an optional copy of each run's curves, never required. The event
files are read back here with tensorboardX's own protobufs (a TFRecord: length, crc, event, crc)."""
from __future__ import annotations

import json
import struct

import pytest

from lopt_core import cli
from lopt_core.store.sqlite import Store
from lopt_core.training import report


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a run's event files: tag -> [(step, value)], in the order written."""
    from tensorboardX.proto import event_pb2
    out: dict[str, list] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


def test_train_logs_every_step_and_evaluation_to_tensorboard(tiny_model_dir, sentiment_csv, lopt_home, capsys):
    code = cli.main(["train", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv),
                     "--method", "lopt1", "--n", "4", "--r", "2", "--steps", "6", "--eval-every", "3",
                     "--eval-size", "8", "--json", "--report-to", "tensorboard"])
    assert code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = lopt_home / "tensorboard" / res["run_id"]
    scalars = read_scalars(folder)
    loss = {step: v for step, v in scalars["train/loss"]}
    stored = {m["step"]: m["value"] for m in Store().metrics(res["run_id"], "loss")}
    assert sorted(loss) == list(range(1, 7)) and all(abs(loss[s] - stored[s]) < 1e-6 for s in loss)
    evals = dict(scalars["eval/accuracy"])
    assert sorted(evals) == [3, 6] and abs(evals[6] - res["accuracy"]) < 1e-6
    assert "train/lr" in scalars


def test_a_sweep_logs_each_configuration_to_its_own_folder(tiny_model_dir, sentiment_csv, lopt_home, tmp_path):
    out = tmp_path / "tb"
    code = cli.main(["sweep", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv),
                     "--methods", "lopt1,ulpt", "--n", "4", "--r", "1,2", "--seeds", "0", "--steps", "3",
                     "--batch-size", "2", "--eval-size", "8", "--eval-every", "0", "--device", "cpu",
                     "--report-to", "tensorboard", "--report-dir", str(out)])
    assert code == 0
    runs = Store().list()
    assert len(runs) == 4 and {p.name for p in out.iterdir()} == {r["run_id"] for r in runs}
    for r in runs:
        scalars = read_scalars(out / r["run_id"])
        assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
        assert dict(scalars["eval/accuracy"])[3] == pytest.approx(r["accuracy"])


def test_an_unknown_or_missing_tracker_is_refused_before_anything_is_queued(tiny_model_dir, sentiment_csv,
                                                                           lopt_home, monkeypatch, capsys):
    args = ["--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv), "--steps", "2"]
    assert cli.main(["train", *args, "--method", "lopt1", "--n", "4", "--r", "2", "--report-to", "wandb"]) == 2
    assert "--report-to 'wandb': the trackers are tensorboard" in capsys.readouterr().err
    monkeypatch.setattr(report, "find_spec", lambda name: None)  # as on a machine without tensorboardX
    assert cli.main(["sweep", *args, "--methods", "lopt1", "--n", "4", "--r", "1",
                     "--report-to", "tensorboard"]) == 2
    assert report.INSTALL in capsys.readouterr().err
    assert Store().list() == [] and Store().list_sweeps() == []
