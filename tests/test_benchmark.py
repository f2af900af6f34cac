"""`ckpp benchmark`: report pages from synthetic numbers, the protocol with stand-in models whose motion is
known, run discovery and its errors, and a tiny end-to-end train → benchmark run."""
import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner

from models import evaluate as ev
from models import report as rp
from tests.fakes import make_fake_dataset

EVERY_METRIC = ["detection_rate", "curve_gap", "curve_trend", "curve_frac_nondecreasing", "curve_largest_drop",
                "curve_jump_ratio", "curve_peak", "nme", "psnr", "ssim", "l1", "mouth_l1", "identity_distance",
                "change_mean", "change_max"]


# ------------------------------------------------------------------ report from synthetic numbers
def synthetic_results(rng):
    series = [dict(key="gt", label="ground truth", model=None, protocol="clip"),
              dict(key="ours", label="ours", model="ours", protocol="clip"),
              dict(key="hp", label="HP", model="hp", protocol="native10")]
    g = {"emotion": "happy", "split": "test", "n_clips": 4, "clips": [], "metrics": {}, "curves": {}}
    for s in series:
        cs = []
        for _ in range(4):
            t = np.linspace(0, 1, 10 if s["key"] == "hp" else int(rng.integers(6, 12)))
            v = np.r_[0, np.full(len(t) - 1, 0.3)] if s["key"] == "hp" else 0.3 * t
            cs.append((t, v + rng.normal(0, 0.01, len(t))))
        g["curves"][s["key"]] = ev.aggregate_curves(cs)
        g["metrics"][s["key"]] = ev.summarize([dict(ev.curve_summary(t, v, *cs[0]), psnr=float(rng.normal(25, 1)),
                                                    identity_distance=float("nan")) for t, v in cs])
    return {"command": "ckpp benchmark --baselines hp", "created": "now", "device": "cpu",
            "data": {"path": "out.h5", "format": "ckpp", "schema_version": 1, "image_size": 64},
            "models": {"ours": {"label": "ours", "family": "ours", "emotions": ["happy"], "run": "runs/ours-happy",
                                "sha256": "0" * 64}},
            "series": series, "groups": {"happy/test": g},
            "latency": {"ours": {"n_frames": 10, "ms_per_clip": ev.bootstrap_ci([5.0, 6.0])}},
            "clips": [], "compare": [], "warnings": ["a warning"], "notes": ["a note"]}


def test_report_files_from_synthetic_numbers(tmp_path):
    res = synthetic_results(np.random.default_rng(0))
    written = rp.write_report(str(tmp_path), res)
    for name in ("report.md", "index.html", "report.json", "fig3_curves.png", "fig3_happy_test.png",
                 "metrics_happy_test.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    md = (tmp_path / "report.md").read_text()
    assert "![Fig. 3 curves for happy/test](fig3_happy_test.png)" in md
    assert "| HP (n=4) |" in md and "a warning" in md and "0000000000" in md
    assert "Fig.3 gap (lower)" in md and "jump/range (lower)" in md
    html = (tmp_path / "index.html").read_text()
    assert "<img src='fig3_happy_test.png'" in html and "<table>" in html
    back = json.loads((tmp_path / "report.json").read_text())   # strict JSON: NaN became null
    assert back["groups"]["happy/test"]["metrics"]["ours"]["identity_distance"]["mean"] is None
    assert set(written) >= {"md", "html", "json", "fig3"}
    # the HP stand-in jumps, ours rises steadily
    m = back["groups"]["happy/test"]["metrics"]
    assert m["hp"]["curve_jump_ratio"]["mean"] > 0.8 > 0.3 > m["ours"]["curve_jump_ratio"]["mean"]


def test_compare_gif_and_strip(tmp_path):
    import imageio.v3 as iio
    import skimage.data

    face = skimage.data.astronaut()[:200, 150:350]
    vid = np.stack([np.roll(face, 4 * k, axis=0) for k in range(7)])
    frames = rp.compare_frames([("input", face), ("ground truth", vid), ("HP", vid[:3])], n_frames=10, panel=64)
    assert len(frames) == 10 and frames[0].shape[1] == 3 * 64 + 2 * 3
    gif = rp.write_gif(str(tmp_path / "compare_x.gif"), frames)
    assert iio.imread(gif, index=None).shape[0] == 10
    sheet = rp.contact_sheet([("input", face), ("ground truth", vid)], n_frames=10, panel=32)
    assert sheet.shape[0] == 2 * 34 and sheet.dtype == np.uint8


def test_swap_keeps_the_old_report_until_the_new_one_is_complete(tmp_path):
    old, new = tmp_path / "report", tmp_path / "report.partial"
    old.mkdir()
    (old / "report.md").write_text("old")
    new.mkdir()
    (new / "report.md").write_text("new")
    rp.swap_into_place(str(new), str(old))
    assert (old / "report.md").read_text() == "new"
    assert not new.exists() and not (tmp_path / "report.previous").exists()


# ------------------------------------------------------------------ the protocol with stand-in models
class StandIn:
    """A generation-only model whose motion is known: 'steady' slides the face down with the degree,
    'frozen' repeats the input (ConvLSTM-like), 'jump' moves all the way at once (HP-like)."""

    def __init__(self, kind, native_frames=None, size=56):
        from types import SimpleNamespace

        self.kind, self.native_frames = kind, native_frames
        self.emotions = ["surprise"]
        self.cfg = SimpleNamespace(image_size=size, crop_fraction=256 / 289)

    def generate(self, first, weights, n_frames):
        import torch

        out = []
        for k in range(n_frames):
            a = k / max(1, n_frames - 1)
            shift = {"steady": round(6 * a), "frozen": 0, "jump": 6 if k else 0}[self.kind]
            out.append(torch.roll(first, shifts=shift, dims=2))
        return torch.stack(out, dim=1)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return make_fake_dataset(tmp_path_factory.mktemp("d") / "out.h5", emotions=("surprise",), n_clips=3, T=7, size=64)


def test_protocol_with_stand_in_models(tmp_path, data_file):
    import torch

    from models import benchmark as bm

    lm = lambda key, kind, n=None: bm.LoadedModel(key, StandIn(kind, n), f"runs/{key}", None)  # noqa: E731
    models = {"ours": {"surprise": lm("ours", "steady")}, "convlstm": {"surprise": lm("convlstm", "frozen", 10)},
              "hp": {"surprise": lm("hp", "jump", 10)}}
    res = bm.run_benchmark(data=data_file, models=models, emotions=["surprise"], splits=["test"], out_dir=str(tmp_path),
                           device=torch.device("cpu"), identity_frames=2, progress=False, warn=lambda m: None)
    m = res["groups"]["surprise/test"]["metrics"]
    assert set(m) == {"gt", "gt@10", "ours", "ours@10", "convlstm", "hp"}
    for key in m:
        pixel = ["psnr", "ssim", "l1", "mouth_l1"] if not key.startswith("gt") else []
        for metric in ["detection_rate", "nme", "identity_distance", "change_max", *pixel]:
            assert math.isfinite(m[key][metric]["mean"]), (key, metric)
        assert m[key]["detection_rate"]["mean"] == 1.0
    assert "psnr" not in m["gt"]   # the real frames against themselves: nothing to measure
    mean = lambda k, x: m[k][x]["mean"]  # noqa: E731
    assert mean("ours", "curve_trend") > 0.9 and mean("ours@10", "curve_trend") > 0.9
    assert mean("convlstm", "curve_peak") < 0.02 < mean("ours", "curve_peak")      # the frozen face does not move
    assert mean("hp", "curve_jump_ratio") > 0.8 > 0.5 > mean("ours", "curve_jump_ratio")  # HP-like jump
    assert mean("convlstm", "l1") < mean("hp", "l1")
    assert m["ours"]["l1_at_zero"]["mean"] == 0.0                                  # f(I,0) = I for the stand-in
    assert set(res["latency"]) == {"ours", "ours@10", "convlstm", "hp"}
    assert res["latency"]["hp"]["n_frames"] == 10
    c = res["compare"][0]
    assert (tmp_path / c["gif"]).exists() and (tmp_path / c["strip"]).exists()
    assert (tmp_path / "report.md").exists()
    json.loads((tmp_path / "report.json").read_text())
    assert "HP" in bm.summary_text(res)
    # the judge and the sharpness (models/judge_metrics.py) on every series, the real clips as the ceiling
    for key in m:
        for metric in ("judge_recognised", "judge_p_start", "judge_p_peak", "sharpness_start", "sharpness_peak"):
            assert m[key][metric]["n"] == 1, (key, metric)
    assert mean("convlstm", "judge_p_start") == mean("convlstm", "judge_p_peak")   # the frozen face: same verdict
    assert mean("convlstm", "sharpness_start") == mean("convlstm", "sharpness_peak")
    assert 0.05 < mean("gt", "sharpness_start") < 1.0     # 64-px view of a larger stored face: less detail
    curves = res["groups"]["surprise/test"]["judge_curves"]
    assert set(curves) == set(m) and len(curves["convlstm"]["mean"]) == 10
    md = (tmp_path / "report.md").read_text()
    assert "![judge P(target) curves for surprise/test](judge_surprise_test.png)" in md
    assert "| ground truth — ceiling (n=1) |" in md and "P(target) peak (higher)" in md
    assert (tmp_path / "judge_surprise_test.png").stat().st_size > 0


def test_empty_split_falls_back_with_a_warning_or_errors_when_explicit(tmp_path):
    import torch

    from ckpp_tools.errors import UsageError
    from models import benchmark as bm

    data = make_fake_dataset(tmp_path / "two.h5", emotions=("surprise",), n_clips=2, T=5, size=64)  # train + val only
    models = {"ours": {"surprise": bm.LoadedModel("ours", StandIn("steady"), "runs/ours", None)}}
    kw = dict(data=data, models=models, emotions=["surprise"], splits=["test"], device=torch.device("cpu"),
              identity=False, n_gifs=0, progress=False)
    seen = []
    (tmp_path / "r").mkdir()
    res = bm.run_benchmark(out_dir=str(tmp_path / "r"), warn=seen.append, **kw)
    assert list(res["groups"]) == ["surprise/val"]
    assert "no 'surprise' clips in the 'test' split" in seen[0] and "train: 1, val: 1" in seen[0]
    assert res["warnings"] == [seen[0][len("warning: "):]]
    with pytest.raises(UsageError, match="clips per split: train: 1, val: 1"):
        bm.run_benchmark(out_dir=str(tmp_path / "r"), split_explicit=True, warn=seen.append, **kw)


# ------------------------------------------------------------------ run discovery and its errors
def fake_run(root, name, model, emotions, data, started):
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"model": model, "emotions": emotions, "started": started,
                                            "data": [{"path": os.path.abspath(data), "schema_version": 1}]}))
    (d / "ckpt-00000001.pt").write_bytes(b"not used before the error")
    (d / "latest").write_text("ckpt-00000001.pt\n")
    return d


def test_missing_baseline_run_names_the_train_command(tmp_path, monkeypatch, data_file):
    from ckpp_tools.cli import main

    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "ours-surprise", "ours", ["surprise"], data_file, "2026-01-01T10:00:00+00:00")
    fake_run(tmp_path, "hp-surprise", "hp", ["surprise"], data_file, "2026-01-01T10:05:00+00:00")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("the previous report")
    res = CliRunner().invoke(main, ["benchmark", "--baselines", "convlstm,hp"])
    assert res.exit_code != 0
    assert "no convlstm run for emotion 'surprise' under runs/" in res.output
    assert "ckpp train --model convlstm --emotion surprise" in res.output
    assert "Traceback" not in res.output
    assert (tmp_path / "report" / "report.md").read_text() == "the previous report"   # untouched
    assert not (tmp_path / "report.partial").exists()


def test_run_discovery_picks_newest_runs(tmp_path, data_file):
    from models import benchmark as bm

    fake_run(tmp_path, "ours-surprise", "ours", ["surprise"], data_file, "2026-01-01T10:00:00+00:00")
    newer = fake_run(tmp_path, "ours-surprise-2", "ours", ["surprise"], data_file, "2026-01-02T10:00:00+00:00")
    fake_run(tmp_path, "convlstm-surprise", "convlstm", ["surprise"], data_file, "2026-01-01T11:00:00+00:00")
    newer_b = fake_run(tmp_path, "convlstm-surprise-2", "convlstm", ["surprise"], data_file, "2026-01-01T12:00:00+00:00")
    sel = bm.find_runs(model_run=None, baselines=["convlstm"], runs_dir=str(tmp_path / "runs"), data=None, emotions=None)
    assert sel.ours.path == os.path.normpath(str(newer))
    assert sel.baselines["convlstm"]["surprise"].path == os.path.normpath(str(newer_b))
    assert sel.data == data_file and sel.emotions == ["surprise"]
    assert bm.checkpoint_of(sel.ours).endswith("ckpt-00000001.pt")


def test_no_main_run_and_bad_options_are_clear_errors(tmp_path, monkeypatch, data_file):
    from ckpp_tools.cli import main

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["benchmark"])
    assert res.exit_code != 0 and "no `ours` run found under runs/" in res.output
    assert "ckpp train --emotion surprise" in res.output
    res = CliRunner().invoke(main, ["benchmark", "--baselines", "lstm"])
    assert res.exit_code != 0 and "unknown baseline 'lstm'" in res.output


# ------------------------------------------------------------------ end to end
def test_end_to_end_train_then_benchmark(tmp_path, monkeypatch):
    """ckpp train (ours + both baselines, a few steps) then `ckpp benchmark --baselines convlstm,hp` exactly
    as typed: the report holds every metric for every model."""
    from models.registry import available

    if not {"ours", "convlstm", "hp"} <= set(available()):
        pytest.skip("a model family is not built yet: " + ", ".join(available()))
    from ckpp_tools.cli import main

    monkeypatch.chdir(tmp_path)
    make_fake_dataset(tmp_path / "out.h5", emotions=("surprise",), n_clips=3, T=6, size=64)
    runner = CliRunner()
    for extra in ([], ["--model", "convlstm"], ["--model", "hp"]):
        res = runner.invoke(main, ["train", "--emotion", "surprise", *extra, "--steps", "2", "--batch-size", "2",
                                   "--workers", "0", "--quiet"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["benchmark", "--baselines", "convlstm,hp", "--identity-frames", "2"])
    assert res.exit_code == 0, res.output
    assert "report: report/report.md" in res.output
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    g = rep["groups"]["surprise/test"]
    for key in ("gt", "ours", "ours@10", "convlstm", "hp"):
        for metric in EVERY_METRIC:
            if key != "gt" or metric not in ("psnr", "ssim", "l1", "mouth_l1"):
                assert metric in g["metrics"][key], (key, metric)
        assert g["metrics"][key]["detection_rate"]["n"] == 1
    assert g["metrics"]["ours"]["l1_at_zero"]["n"] == 1
    assert set(rep["latency"]) == {"ours", "ours@10", "convlstm", "hp"}
    assert {m["family"] for m in rep["models"].values()} == {"ours", "convlstm", "hp"}
    assert all(len(m["sha256"]) == 64 for m in rep["models"].values())
    assert rep["data"]["schema_version"] == 1
    assert rep["command"] == "ckpp benchmark --baselines convlstm,hp --identity-frames 2"
    assert (tmp_path / "report" / rep["compare"][0]["gif"]).exists()
    md = (tmp_path / "report" / "report.md").read_text()
    for label in ("ConvLSTM", "HP", "ours a=0.1…1", "ground truth"):
        assert label in md
    for key in ("gt", "ours", "ours@10", "convlstm", "hp"):   # the judge's rows and its curve file
        assert g["metrics"][key]["judge_p_peak"]["n"] == 1 and g["judge_curves"][key]["n"] == 1
    assert "What a viewer would see" in md and (tmp_path / "report" / "judge_surprise_test.png").exists()
    # the same runs on a real photo in the wild (models/in_the_wild.py): every model, one GIF with all three
    import shutil

    import matplotlib

    (tmp_path / "photos").mkdir()
    shutil.copy(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), tmp_path / "photos")
    res = runner.invoke(main, ["benchmark", "--photos", "photos", "--baselines", "convlstm,hp", "--no-identity",
                               "--gifs", "1", "-o", "wild"])
    assert res.exit_code == 0, res.output
    wild = json.loads((tmp_path / "wild" / "report.json").read_text())
    assert {r["model"] for r in wild["rows"]} == {"ours", "convlstm", "hp"} and len(wild["compare"]) == 1
    assert all(r["n_frames"] == 10 for r in wild["rows"])
    assert all(len(r["judge_curve"]) == 10 and r["sharpness_peak"] > 0 for r in wild["rows"])
    assert wild["judge_figs"] == {"photos/surprise": "judge_photos_surprise.png"}
    assert (tmp_path / "wild" / "judge_photos_surprise.png").exists()
