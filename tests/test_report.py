"""--report-to tensorboard (training/report.py): an optional copy of each run's curves, never required. The event
files are read back here with tensorboardX's own protobufs (a TFRecord: length, crc, event, crc)."""
from __future__ import annotations

import json
import struct

import pytest

from lopt_core import cli
from lopt_core.store.sqlite import Store
from lopt_core.training import report


def read_events(folder) -> dict[str, list]:
    """Every scalar and text in a run's event files, as TensorBoard shows them: tag -> [(step, value)] in the
    order written, where a later file's purge (a SessionLog START at step s) drops what earlier ones logged at
    steps >= s."""
    from tensorboardX.proto import event_pb2
    out: dict[str, list] = {}
    for path in sorted(folder.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            if ev.HasField("session_log") and ev.session_log.status == event_pb2.SessionLog.START:
                out = {tag: [(st, v) for st, v in pts if st < ev.step] for tag, pts in out.items()}
            for v in ev.summary.value:
                value = v.tensor.string_val[0].decode() if v.tensor.string_val else v.simple_value
                out.setdefault(v.tag, []).append((ev.step, value))
    return out



def test_train_logs_every_step_and_evaluation_to_tensorboard(tiny_model_dir, sentiment_csv, lopt_home, capsys):
    code = cli.main(["train", "--model", tiny_model_dir, "--task", "file", "--data-file", str(sentiment_csv),
                     "--method", "lopt1", "--n", "4", "--r", "2", "--steps", "6", "--eval-every", "3",
                     "--eval-size", "8", "--json", "--report-to", "tensorboard"])
    assert code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = lopt_home / "tensorboard" / res["run_id"]
    scalars = read_events(folder)
    loss = {step: v for step, v in scalars["train/loss"]}
    stored = {m["step"]: m["value"] for m in Store().metrics(res["run_id"], "loss")}
    assert sorted(loss) == list(range(1, 7)) and all(abs(loss[s] - stored[s]) < 1e-6 for s in loss)
    evals = dict(scalars["eval/accuracy"])
    assert sorted(evals) == [3, 6] and abs(evals[6] - res["accuracy"]) < 1e-6
    assert "train/lr" in scalars
    (_, text), = scalars["config/text_summary"]
    assert '"method": "lopt1"' in text and '"steps": 6' in text and '"test_examples": 8' in text


def test_a_resumed_run_continues_one_curve_not_a_zigzag(tmp_path):
    """The hook as the loop drives it: a run logs steps 1-5 and is killed; resumed from its checkpoint at step 3,
    its steps 4-6 replace the killed run's 4-5 (the store drops them too), and the configuration stays."""
    first = report.TensorBoard(tmp_path, {"r1": {"method": "lopt1"}})
    first("r1", {"type": "start", "total_steps": 6})
    for step in range(1, 6):
        first("r1", {"type": "step", "step": step, "loss": 10.0 + step})
    first.close()  # killed: no end event
    again = report.TensorBoard(tmp_path, {"r1": {"method": "lopt1"}})
    again("r1", {"type": "start", "total_steps": 6})
    again("r1", {"type": "resumed", "step": 3})
    for step in range(4, 7):
        again("r1", {"type": "step", "step": step, "loss": 20.0 + step})
    again("r1", {"type": "end", "state": "done", "result": {}})
    loss = read_events(tmp_path / "r1")["train/loss"]
    assert loss == [(1, 11.0), (2, 12.0), (3, 13.0), (4, 24.0), (5, 25.0), (6, 26.0)]


def test_a_ray_sweeps_events_carry_lr_and_evaluations(tmp_path, lopt_home):
    """A Ray sweep's CLI events are rebuilt from the ops its tasks send: lr, examples/s and evaluations too."""
    from lopt_core.config import RunConfig
    from lopt_core.sweeps import ray_backend
    seen = []
    ops = [("metric", "r1", (3, "loss", 0.5, 0.01, 8.0)), ("metric", "r1", (3, "accuracy", 0.75, None, None))]
    ray_backend._events(ops, Store(), {"r1": RunConfig()}, lambda rid, ev: seen.append((rid, ev)))
    assert seen == [("r1", {"type": "step", "step": 3, "loss": 0.5, "lr": 0.01, "examples_per_s": 8.0}),
                    ("r1", {"type": "eval", "step": 3, "accuracy": 0.75})]
    hook = report.TensorBoard(tmp_path)
    for rid, ev in seen:
        hook(rid, ev)
    hook.close()
    got = read_events(tmp_path / "r1")
    assert got["train/lr"] == [(3, pytest.approx(0.01))] and got["eval/score"] == [(3, 0.75)]


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
        scalars = read_events(out / r["run_id"])
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
