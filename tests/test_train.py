"""`ckpp train` and the shared loop: defaults as typed, losses fall, f(I,0) ≈ I, exact resume (also after
kill -9), DDP on CPU, and the error texts for bad inputs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.errors import UsageError
from models.checkpoint import list_checkpoints, load_run
from models.commands.train import default_out
from models.config import load_config
from models.data import ClipDataset, to_model_batch
from models.training_loop import train
from tests.fakes import make_fake_dataset

torch.set_num_threads(1)          # 2 shared cores: one thread per process is faster than oversubscription
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CKPP_DATA": ""}
SMALL = {"preset": "tiny", "image_size": 32, "levels": 5, "base_width": 8, "max_width": 32, "d_width": 8,
         "batch_size": 4, "num_workers": 0, "log_every": 1, "ckpt_every": 3, "sample_every": 3}
TIMING = ("steps_per_s", "samples_per_s")


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CKPP_DATA", raising=False)
    make_fake_dataset(tmp_path / "out.h5", emotions=("surprise", "happy"), n_clips=4, T=6, size=36)
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    return tmp_path


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as fh:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in fh]


def test_losses_decrease_and_run_folder(folder):
    cfg = load_config("small.json").replace(max_steps=50, log_every=5, ckpt_every=25, sample_every=50)
    res = train(cfg, "ours", ["surprise", "happy"], ["out.h5"], "runs/x", progress=False)
    m = metrics(res["run_dir"])
    assert [r["step"] for r in m] == list(range(5, 51, 5))
    assert m[-1]["rec"] < 0.7 * m[0]["rec"] and m[-1]["g_total"] < m[0]["g_total"]
    for term in ("d_g", "d_l", "g_g", "g_l", "rec", "tmp", "lmk"):
        assert term in m[-1]
    run = json.loads((folder / "runs/x/run.json").read_text())
    assert run["model"] == "ours" and run["emotions"] == ["surprise", "happy"]
    assert run["data"][0]["path"] == str(folder / "out.h5") and run["data"][0]["schema_version"] == 1
    assert json.loads((folder / "runs/x/config.json").read_text())["image_size"] == 32
    assert (folder / "runs/x/samples/step-00000050.png").is_file()
    assert [os.path.basename(p) for p in list_checkpoints(folder / "runs/x")] == ["ckpt-00000025.pt", "ckpt-00000050.pt"]


def test_overfit_one_clip_reconstructs_input(tmp_path):
    data = make_fake_dataset(tmp_path / "one.h5", n_clips=1, T=6, size=36)
    cfg = load_config("tiny").replace(**{k: v for k, v in SMALL.items() if k != "preset"}).replace(
        lr=2e-3, use_global_d=False, use_local_d=False, max_steps=100, log_every=50, ckpt_every=100, sample_every=100)
    ds = ClipDataset([data], ["surprise"], "train", image_size=32, augment=False)
    b = to_model_batch(torch.utils.data.default_collate([ds[0]]), "cpu")
    fam0 = __import__("models.ours", fromlist=["x"]).OursFamily(cfg, ["surprise"]).attach(train=False)
    before = (fam0.generate(b["input"], torch.ones(1, 1), 2)[:, 0] - b["input"]).abs().mean()
    train(cfg, "ours", ["surprise"], [data], tmp_path / "run", progress=False)
    fam, _ = load_run(tmp_path / "run")
    after = (fam.generate(b["input"], torch.ones(1, 1), 2)[:, 0] - b["input"]).abs().mean()
    assert before > 0.3 and after < 0.1, (before, after)


def test_stop_and_resume_reproduces_uninterrupted_run(folder):
    cfg = load_config("small.json")
    full = train(cfg.replace(max_steps=6), "ours", ["surprise"], ["out.h5"], "runs/full", progress=False)
    train(cfg.replace(max_steps=3), "ours", ["surprise"], ["out.h5"], "runs/part", progress=False)
    res = train(cfg, "ours", ["surprise"], ["out.h5"], "runs/part", resume=True, overrides={"max_steps": 6}, progress=False)
    assert res["step"] == full["step"] == 6
    with pytest.raises(UsageError, match="is ours on surprise, not ours on happy"):
        train(cfg, "ours", ["happy"], ["out.h5"], "runs/part", resume=True, progress=False)
    a, b = metrics("runs/full"), metrics("runs/part")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)


def test_exactly_as_typed_then_kill9_and_resume(folder):
    """`ckpp train --emotion surprise` in a folder with one prepared file; kill -9 mid-run; --resume."""
    (folder / "c2.json").write_text(json.dumps({**SMALL, "ckpt_every": 2}))
    proc = subprocess.Popen([sys.executable, "-m", "ckpp_tools.cli", "train", "--emotion", "surprise",
                             "--config", "c2.json", "--steps", "1000", "--quiet"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = folder / "runs" / "ours-surprise"
    t0 = time.time()
    try:
        while time.time() - t0 < 90 and not any(p.endswith("ckpt-00000004.pt") for p in list_checkpoints(run)):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list_checkpoints(run), "no checkpoint before the kill"
    res = CliRunner().invoke(main, ["train", "--emotion", "surprise", "--resume", "--steps", "8", "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "step 8" in res.output and "runs/ours-surprise" in res.output
    ref = train(load_config("c2.json").replace(max_steps=8), "ours", ["surprise"], ["out.h5"], "runs/ref", progress=False)
    got, want = metrics(run), metrics(ref["run_dir"])
    assert [r["step"] for r in got] == list(range(1, 9))
    for ra, rb in zip(want, got):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["data"][0]["path"] == str(folder / "out.h5")
    # the default tiny config is what a plain `ckpp train --emotion surprise` uses on CPU
    assert json.loads((folder / "runs/ref/config.json").read_text())["ckpt_every"] == 2


def test_default_command_uses_tiny_and_names_the_run(folder):
    """Exactly `ckpp train --emotion surprise`: finds out.h5, tiny config on CPU, runs/ours-surprise."""
    proc = subprocess.Popen([shutil.which("ckpp") or "ckpp", "train", "--emotion", "surprise"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = folder / "runs/ours-surprise/metrics.jsonl"
    t0 = time.time()
    try:
        while time.time() - t0 < 120 and not (log.is_file() and log.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads(log.read_text().splitlines()[0])["step"] == 10
    cfg = json.loads((folder / "runs/ours-surprise/config.json").read_text())
    assert cfg["image_size"] == 64 and cfg["levels"] == 6 and cfg["base_width"] == 8
    assert json.loads((folder / "runs/ours-surprise/run.json").read_text())["command"] == "ckpp train --emotion surprise"
    assert default_out("ours", ["surprise"], resume=False) == os.path.join("runs", "ours-surprise-2")
    assert default_out("ours", ["surprise"], resume=True) == os.path.join("runs", "ours-surprise")


def test_cli_errors(folder, tmp_path_factory):
    r = CliRunner()
    res = r.invoke(main, ["train", "--emotion", "anger", "--config", "small.json"])
    assert res.exit_code != 0 and "no accepted 'train' clips of anger; it has: happy (2), surprise (2)" in res.output
    res = r.invoke(main, ["train", "--emotion", "joy"])
    assert res.exit_code != 0 and "unknown emotion 'joy'" in res.output
    (folder / "rep.json").write_text(json.dumps({**SMALL, "emotion_repeats": {"anger": 3}}))
    res = r.invoke(main, ["train", "out.h5", "--emotion", "happy", "--config", "rep.json", "--out", "runs/rep"])
    assert res.exit_code != 0 and "emotion_repeats names anger, which this run does not train (happy)" in res.output
    assert not os.path.exists("runs/rep/config.json")
    res = r.invoke(main, ["train", "missing.h5", "--emotion", "happy"])
    assert res.exit_code != 0 and "missing.h5: no such data file" in res.output
    shutil.copy("out.h5", "other.h5")
    res = r.invoke(main, ["train", "--emotion", "happy"])
    assert res.exit_code != 0 and "several prepared data files here: other.h5, out.h5" in res.output
    assert "ckpp train other.h5 --emotion" in res.output
    empty = tmp_path_factory.mktemp("empty")
    os.chdir(empty)
    res = r.invoke(main, ["train", "--emotion", "happy"])
    assert res.exit_code != 0 and "no prepared data file here" in res.output and "ckpp prepare" in res.output


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_ddp_two_cpu_processes(folder):
    proc = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "ckpp_tools.cli", "train", "out.h5",
                           "--emotion", "surprise", "--config", "small.json", "--steps", "3", "--quiet"],
                          env=ENV, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(folder / "runs") == ["ours-surprise"]        # both ranks agreed on the default --out
    run = json.loads((folder / "runs/ours-surprise/run.json").read_text())
    assert run["world_size"] == 2 and run["per_rank_batch"] == 2
    assert [r["step"] for r in metrics(folder / "runs/ours-surprise")] == [1, 2, 3]
    fam, meta = load_run(folder / "runs/ours-surprise")
    assert meta["step"] == 3


def test_lr_decay_schedule_and_exact_resume(folder):
    cfg = load_config("small.json")
    assert cfg.lr_decay == "none" and cfg.lr_at(5, 6) == cfg.lr          # default: constant, as before
    lin = cfg.replace(lr_decay="linear", lr_decay_from=0.5, max_steps=6)
    assert [lin.lr_at(s) / lin.lr for s in range(6)] == pytest.approx([1, 1, 1, 1, 2 / 3, 1 / 3])
    cos = lin.replace(lr_decay="cosine", lr_decay_from=0.0)
    assert cos.lr_at(0) == cos.lr and cos.lr_at(3) == pytest.approx(cos.lr / 2) and cos.lr_at(6) == pytest.approx(0)
    with pytest.raises(UsageError, match="lr_decay"):
        cfg.replace(lr_decay="step")
    with pytest.raises(UsageError, match="lr_decay_from"):
        cfg.replace(lr_decay_from=1.0)
    dec = cfg.replace(lr_decay="linear", lr_decay_from=0.0)
    full = train(dec.replace(max_steps=6), "ours", ["surprise"], ["out.h5"], "runs/full", progress=False)
    # the schedule runs over max_steps, so "stopped at 3 of 6" is a 6-step run that lost its step-6
    # checkpoint (ckpt_every=3): resume from step 3
    train(dec.replace(max_steps=6), "ours", ["surprise"], ["out.h5"], "runs/part", progress=False)
    os.remove("runs/part/ckpt-00000006.pt")
    with open("runs/part/latest", "w") as fh:
        fh.write("ckpt-00000003.pt\n")
    res = train(dec, "ours", ["surprise"], ["out.h5"], "runs/part", resume=True, progress=False)
    assert res["step"] == full["step"] == 6
    a, b = metrics("runs/full"), metrics("runs/part")
    assert [r["lr"] for r in a] == pytest.approx([dec.lr * (1 - s / 6) for s in range(6)])
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)


def test_two_runs_cannot_write_one_run_folder(folder):
    """A second `ckpp train --resume` into a folder another run is writing stops with the holder's pid."""
    from ckpp_tools.locking import OutputLock

    out = os.path.abspath("runs/ours-surprise")
    os.makedirs("runs")
    with OutputLock(out, what="ckpp train"):
        res = CliRunner().invoke(main, ["train", "out.h5", "--emotion", "surprise", "--config", "small.json",
                                        "--steps", "1", "--out", out, "--resume"])
        assert res.exit_code != 0 and "another ckpp train is writing this output" in res.output, res.output
        assert f"pid {os.getpid()}" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["train", "out.h5", "--emotion", "surprise", "--config", "small.json",
                                    "--steps", "1", "--out", out, "--resume"])
    assert res.exit_code == 0, res.output
    assert not os.path.exists(out + ".lock")


def test_average_checkpoints_is_the_mean_and_names_a_mismatch(folder):
    from ckpp_tools.errors import CkppError
    from models.checkpoint import average_checkpoints, read_checkpoint

    cfg = load_config("small.json")
    train(cfg.replace(max_steps=6, keep_checkpoints=5), "ours", ["surprise"], ["out.h5"], "runs/a", progress=False)
    paths = list_checkpoints("runs/a")[-2:]
    info = average_checkpoints(paths, "avg.pt")
    a, b, m = (read_checkpoint(p) for p in (*paths, "avg.pt"))
    assert info["step"] == m["step"] == b["step"] == 6
    k = next(iter(m["modules"]["G"]))
    assert torch.allclose(m["modules"]["G"][k], (a["modules"]["G"][k] + b["modules"]["G"][k]) / 2)
    fam, _ = load_run("avg.pt")                                  # a checkpoint ckpp loads as any other
    assert fam.emotions == ["surprise"]
    train(cfg.replace(max_steps=3, base_width=4), "ours", ["surprise"], ["out.h5"], "runs/b", progress=False)
    with pytest.raises(CkppError, match="cannot average"):
        average_checkpoints([list_checkpoints("runs/b")[-1], paths[-1]], "bad.pt")
