"""`ckpp benchmark --photos`: stand-in models with known motion give known gains, a photo without a face is a
row with a reason; in-the-wild alignment (levelled eyes) survives a 20-degree roll."""
import json
import os
import shutil

import cv2
import imageio.v3 as iio
import matplotlib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpp_tools import expressions as ex
from ckpp_tools import face_measures as fm
from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
from models import in_the_wild as iw
from models.benchmark import DETECT_SIZE, LoadedModel
from tests.fakes import make_fake_dataset

HOPPER = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
#: the opener drops the inner lower lip (and the jaw with it) by this many IOD at the peak
OPEN = 0.25
OPEN_FIELD = np.zeros((68, 2))
OPEN_FIELD[[65, 66, 67], 1] = OPEN
OPEN_FIELD[[55, 56, 57, 58, 59], 1] = OPEN
OPEN_FIELD[5:12, 1] = OPEN * np.array([0.3, 0.6, 0.9, 1.0, 0.9, 0.6, 0.3])


def _landmarks(img):
    """dlib landmarks of a small crop, found as the benchmark finds them (upscaled to DETECT_SIZE)."""
    s = img.shape[0]
    k = max(1.0, DETECT_SIZE / s)
    big = cv2.resize(img, (round(s * k), round(s * k)), interpolation=cv2.INTER_CUBIC)
    lm = DlibLandmarker.shared().detect_landmarks(big, max_side=None)
    assert lm is not None
    return (lm + 0.5) / k - 0.5


class StandIn:
    """A generation-only model with known motion: 'still' repeats the input (zero gain), 'open' warps the input
    crop with ckpp_tools.expressions so the inner-lip gap grows by a·OPEN inter-ocular distances."""

    def __init__(self, kind, name="ours", native_frames=None, size=96):
        from types import SimpleNamespace

        self.kind, self.name, self.native_frames = kind, name, native_frames
        self.emotions = ["surprise"]
        self.cfg = SimpleNamespace(image_size=size, crop_fraction=256 / 289)
        self.device = torch.device("cpu")
        self.expected = []            # per input: the opened peak's mouth_open gain on its own landmarks

    def train_mode(self, flag):
        pass

    def generate(self, first, weights, n_frames, **kw):
        out = []
        for x in first:
            img = ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            if self.kind == "still":
                out.append(np.stack([img] * n_frames))
                continue
            lm = _landmarks(img)
            anchors = ex.anchor_ring(lm)
            warper = ex.PiecewiseAffine(img, np.concatenate([lm, anchors]),
                                        np.concatenate([ex.displace(lm, OPEN_FIELD * 1.2), anchors]))
            self.expected.append(fm.gains(lm, ex.displace(lm, OPEN_FIELD))["mouth_open"])
            frames = []
            for k in range(n_frames):
                target = ex.displace(lm, OPEN_FIELD * k / max(1, n_frames - 1))
                f = warper.warp(np.concatenate([target, anchors]))
                ex.paint_mouth_cavity(f, target, k / max(1, n_frames - 1), 0.3)
                frames.append(f)
            out.append(np.stack(frames))
        v = torch.from_numpy(np.stack(out)).float().div(127.5).sub(1).permute(0, 1, 4, 2, 3)
        return v


def _loaded(fam, key):
    return LoadedModel(key=key, family=fam, run=f"stand-in {fam.kind}", checkpoint=None)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    (d / "heldout").mkdir()
    (d / "unlike").mkdir()
    iio.imwrite(d / "heldout" / "astronaut.png", data.astronaut())
    iio.imwrite(d / "heldout" / "noise.png", np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    shutil.copy(HOPPER, d / "unlike" / "hopper.jpg")
    return d


def test_stand_ins_with_known_motion_give_known_gains(tmp_path, photo_dir):
    data = make_fake_dataset(tmp_path / "out.h5", emotions=("surprise",), n_clips=3, T=5, size=64)
    opener, still = StandIn("open"), StandIn("still", name="convlstm", native_frames=10)
    models = {"ours": {"surprise": _loaded(opener, "ours")}, "convlstm": {"surprise": _loaded(still, "convlstm")}}
    out = tmp_path / "rep"
    out.mkdir()
    res = iw.run_photos(photo_dirs=[str(photo_dir)], models=models, emotions=["surprise"], out_dir=str(out),
                        device=torch.device("cpu"), data=data, n_frames=5, n_gifs=1, progress=False, warn=lambda m: None)
    # the photo without a face is a row with its reason, in its own group
    noise = [p for p in res["photos"] if p["photo"].endswith("noise.png")][0]
    assert noise["face"] is False and noise["reason"] == "no face found in the photo"
    assert res["groups"]["heldout"]["no_face"] == [{"photo": "heldout/noise.png", "reason": "no face found in the photo"}]
    assert res["groups"]["heldout"]["n_faces"] == 1 and res["groups"]["unlike"]["n_faces"] == 1
    assert res["groups"]["all"]["n_photos"] == 3
    rows = {(r["photo"], r["model"]): r for r in res["rows"]}
    assert len(rows) == 4                                     # two faces x two models, none for the noise
    for photo, expected in zip(("heldout/astronaut.png", "unlike/hopper.jpg"), opener.expected):
        s, o = rows[(photo, "convlstm")], rows[(photo, "ours")]
        assert s["detection_rate"] == 1.0 and s["n_frames"] == 10
        assert abs(s["mouth_open_gain"]) < 1e-9 and s["l1_at_zero"] == 0.0 and s["identity_distance"] < 1e-6
        assert o["detection_rate"] == 1.0
        assert expected == pytest.approx(OPEN, abs=0.03)
        assert o["mouth_open_gain"] == pytest.approx(expected, abs=0.06), (photo, o)
        assert abs(o["mouth_width_gain"]) < 0.05
        assert o["direction_cosine"] > 0.5                    # the fake clips' surprise also drops the jaw
        assert o["identity_distance"] < 0.6
    # the reference motion came from the data file's training clips
    assert res["reference"]["surprise"]["n_clips"] >= 1
    assert res["reference"]["surprise"]["gains"]["mouth_open"] > 0.2
    measured = res["reference"]["surprise"]["measured_gains"]
    assert measured["n_clips"] >= 1 and measured["mouth_open"] > 0.1
    assert res["headline"]["all"]["surprise"]["training_mouth_open_gain_measured"] == measured["mouth_open"]
    h = res["headline"]["all"]["surprise"]
    assert h["n_faces"] == 2 and h["face_found"] == 1.0 and h["mouth_open_gain_median"] == pytest.approx(OPEN, abs=0.06)
    back = json.loads((out / "report.json").read_text())
    assert back["headline"]["heldout"]["surprise"]["identity_distance_median"] < 0.6
    md = (out / "report.md").read_text()
    assert "heldout/noise.png: no face found in the photo" in md and "mouth open gain" in md
    for name in ("index.html", "sheet_heldout_surprise.png", "sheet_unlike_surprise.png"):
        assert (out / name).stat().st_size > 0
    gif = iio.imread(out / res["compare"][0]["gif"], index=None)
    assert gif.shape[0] == 5 and gif.shape[2] > 3 * 128      # input | ours | ConvLSTM
    # the judge and the sharpness (models/judge_metrics.py): the still face keeps its verdict and its detail,
    # and a 96-px crop holds less detail than the face in the photo
    for photo in ("heldout/astronaut.png", "unlike/hopper.jpg"):
        s, o = rows[(photo, "convlstm")], rows[(photo, "ours")]
        assert s["judge_p_start"] == s["judge_p_peak"] and s["sharpness_start"] == s["sharpness_peak"]
        assert 0.05 < s["sharpness_peak"] < 0.9 and len(s["judge_curve"]) == 10 and len(o["judge_curve"]) == 5
        assert o["judge_p_start"] == pytest.approx(s["judge_p_start"], abs=0.02)   # the same frame 0
    assert rows[("heldout/astronaut.png", "convlstm")]["judge_recognised"] == 0.0    # she smiles: no surprise
    ceiling = res["judge_ceiling"]["surprise"]
    assert ceiling["n_clips"] >= 1 and len(ceiling["curve"]["mean"]) > 1
    assert 0 <= h["judge_recognised_share"] <= 1 and h["sharpness_peak_median"] > 0.05
    for name in ("judge_heldout_surprise.png", "judge_unlike_surprise.png"):
        assert (out / name).stat().st_size > 0
    assert "What a viewer would see" in md and "training clips — ceiling" in md and "![judge P(target)" in md
    assert "FER2013" in md



def test_neutral_start_rows_shut_the_smile_and_keep_the_known_gain(tmp_path, photo_dir):
    """--start as-is,neutral,auto: every model is also run from the photo's face warped back to neutral. The astronaut
    smiles with parted lips: her neutral-start frame 0 has the mouth shut, the opener still opens it by OPEN,
    identity is measured against the photo as it is (the still model's neutral start is not at distance 0)."""
    opener, still = StandIn("open"), StandIn("still", name="convlstm", native_frames=10)
    models = {"ours": {"surprise": _loaded(opener, "ours")}, "convlstm": {"surprise": _loaded(still, "convlstm")}}
    out = tmp_path / "rep"
    out.mkdir()
    res = iw.run_photos(photo_dirs=[str(photo_dir / "heldout")], models=models, emotions=["surprise"],
                        out_dir=str(out), device=torch.device("cpu"), n_frames=5, n_gifs=1, progress=False,
                        warn=lambda m: None, starts=("as-is", "neutral", "auto"))
    rows = {r["model"]: r for r in res["rows"]}
    assert set(rows) == {"ours", "convlstm", "ours+neutral", "convlstm+neutral", "ours+auto", "convlstm+auto"}
    # her lips are parted: auto starts from the neutralised face, exactly as neutral does
    assert rows["ours+auto"]["applied_start"] == "neutral" and rows["ours"]["applied_start"] == "as-is"
    assert rows["convlstm+auto"]["l1_at_zero"] == 0.0
    assert rows["convlstm+auto"]["identity_distance"] == pytest.approx(rows["convlstm+neutral"]["identity_distance"])
    assert [p for p in res["photos"] if p["face"]][0]["auto_start"] == "neutral"
    assert res["models"]["ours+auto"]["label"] == "ours (auto start)"
    assert rows["ours+neutral"]["start"] == "neutral" and rows["ours"]["start"] == "as-is"
    assert res["models"]["ours+neutral"]["label"] == "ours (neutral start)"
    assert res["models"]["ours+neutral"]["start"] == "neutral"
    info = [p for p in res["photos"] if p["face"]][0]["neutral_start"]
    assert info["happy"] > 0.4 and info["mouth_open"] > 0.03 and info["mouth_open_after"] < 0.005
    sn = rows["convlstm+neutral"]
    assert sn["l1_at_zero"] == 0.0 and abs(sn["mouth_open_gain"]) < 1e-9     # the still model repeats its input
    assert 0.0 < sn["start_l1"] < 0.05 and 0.01 < sn["identity_distance"] < 0.6   # vs the photo as it is
    assert rows["ours+neutral"]["mouth_open_gain"] == pytest.approx(OPEN, abs=0.06)
    h = res["headline"]["heldout"]["surprise"]
    assert h["neutral_start"]["mouth_open_gain_median"] == pytest.approx(OPEN, abs=0.06)
    assert "ours (neutral start)" in (out / "report.md").read_text()
    assert set(h) >= {"neutral_start", "auto_start"}
    gif = iio.imread(out / res["compare"][0]["gif"], index=None)
    assert gif.shape[2] > 7 * 128                             # input | 2 models x 3 starts


def test_generate_neutral_start_shuts_a_smile_in_frame_0():
    """`ckpp generate --start neutral`: frame 0 (f(I,0) of a model that repeats its input) is the photo's face
    with the smile taken back and the lips shut; as-is keeps the open smile; auto neutralises the astronaut
    (parted lips) and leaves Grace Hopper (closed lips) as she is."""
    from skimage import data

    from models.generate import generate_video

    still = StandIn("still")
    photo = data.astronaut()
    as_is = generate_video(still, photo, {"surprise": 1.0}, n_frames=2, min_side=96)
    neutral = generate_video(still, photo, {"surprise": 1.0}, n_frames=2, min_side=96, start="neutral")
    m_as_is, m_neutral = fm.measure(_landmarks(as_is[0])), fm.measure(_landmarks(neutral[0]))
    assert m_as_is["mouth_open"] > 0.05 and m_neutral["mouth_open"] < 0.03
    assert m_neutral["mouth_width"] < m_as_is["mouth_width"] - 0.05
    pasted = generate_video(still, photo, {"surprise": 1.0}, n_frames=2, paste=True, start="neutral")
    assert pasted.shape[1:3] == photo.shape[:2]
    found = {}
    auto = generate_video(still, photo, {"surprise": 1.0}, n_frames=2, min_side=96, start="auto", report=found)
    assert found["start"] == "neutral" and np.array_equal(auto, neutral)
    hopper = iio.imread(HOPPER)
    found = {}
    auto = generate_video(still, hopper, {"surprise": 1.0}, n_frames=2, min_side=96, start="auto", report=found)
    assert found["start"] == "as-is" and found["expression"]["mouth_open"] < 0.04
    assert np.array_equal(auto, generate_video(still, hopper, {"surprise": 1.0}, n_frames=2, min_side=96))

def test_cli_photos_with_a_trained_run_and_no_baselines(tmp_path, photo_dir, monkeypatch):
    from ckpp_tools.cli import main
    from models.config import load_config
    from models.training_loop import train

    monkeypatch.chdir(tmp_path)
    data = make_fake_dataset(tmp_path / "out.h5", emotions=("surprise",), n_clips=3, T=4, size=36)
    cfg = load_config("tiny").replace(image_size=32, levels=5, base_width=4, max_width=16, d_width=8, batch_size=2,
                                      num_workers=0, max_steps=1, log_every=1, ckpt_every=1, sample_every=1)
    train(cfg, "ours", ["surprise"], [data], tmp_path / "runs" / "ours-surprise", progress=False)
    os.remove(data)                                           # photos need no data file (only for the reference)
    res = CliRunner().invoke(main, ["benchmark", "--photos", str(photo_dir / "unlike"), "--photos",
                                    str(photo_dir / "heldout"), "--baselines", "none", "--no-identity", "--gifs", "0", "-o", "wild"])
    assert res.exit_code == 0, res.output
    assert "unlike: 1 faces in 1 photos" in res.output and "heldout: 1 faces in 2 photos (1 without a face)" in res.output
    assert "synthetic expression table" in res.output         # the warning about the missing reference clips
    rep = json.loads((tmp_path / "wild" / "report.json").read_text())
    assert set(rep["groups"]) == {"unlike", "heldout", "all"} and list(rep["models"]) == ["ours"]
    assert not os.path.exists(tmp_path / "wild.partial")
    # ckpp generate on a tilted photo: levelled and pasted back (default) or as it is (--no-align)
    tilted, _ = _rotate(iio.imread(photo_dir / "heldout" / "astronaut.png"), 20.0)
    iio.imwrite(tmp_path / "tilted.png", tilted)
    for extra in ([], ["--no-align"], ["--start", "neutral"], ["--start", "as-is"]):
        res = CliRunner().invoke(main, ["generate", "runs/ours-surprise", "tilted.png", "--emotion", "surprise",
                                        "--frames", "2", "--paste-back", "-o", "t.gif", *extra])
        assert res.exit_code == 0, res.output
        assert iio.imread(tmp_path / "t.gif", index=None).shape[1:3] == tilted.shape[:2]
        # the astronaut smiles with parted lips: the default start (auto) shuts them first, and says so
        assert ("lips in tilted.png are parted" in res.output) == ("--start" not in extra), res.output
    res = CliRunner().invoke(main, ["benchmark", "--photos", "wild", "--split", "test"])
    assert res.exit_code != 0 and "not photos" in res.output
    res = CliRunner().invoke(main, ["benchmark", "--start", "neutral"])
    assert res.exit_code != 0 and "--start neutral applies to photos" in res.output
    res = CliRunner().invoke(main, ["benchmark", "--photos", str(photo_dir / "unlike"), "--start", "as-is,smile"])
    assert res.exit_code != 0 and "unknown start 'smile'" in res.output
    res = CliRunner().invoke(main, ["benchmark", "--photos", str(photo_dir / "unlike"), "--no-identity", "--gifs", "0",
                                    "--start", "as-is,neutral", "-o", "wild2"])
    assert res.exit_code == 0, res.output
    assert "ours (neutral start)" in res.output
    assert set(json.loads((tmp_path / "wild2" / "report.json").read_text())["models"]) == {"ours", "ours+neutral"}
    res = CliRunner().invoke(main, ["benchmark", "--photos", str(tmp_path / "nothing"), "-o", "wild"])
    assert res.exit_code != 0 and "not a folder of photos" in res.output
    assert (tmp_path / "wild" / "report.json").exists()       # a failed run leaves the old report


# ------------------------------------------------------------------ alignment (item 6)
def _rotate(img, deg):
    """img rotated by `deg` about its centre on an expanded canvas; returns (rotated, 2x3 matrix)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    W, H = int(h * s + w * c), int(h * c + w * s)
    m[:, 2] += (W / 2 - w / 2, H / 2 - h / 2)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), m


def test_rotated_photo_gives_the_upright_crop_and_the_same_peak():
    from skimage import data

    from models.generate import face_crop, generate_video

    photo = data.astronaut()
    rotated, m = _rotate(photo, 20.0)
    up, rot = face_crop(photo, 96, 256 / 289), face_crop(rotated, 96, 256 / 289)
    unaligned = face_crop(rotated, 96, 256 / 289, align=False)
    assert rot.angle - up.angle == pytest.approx(-20.0, abs=2.0)       # cv2: positive angle = counter-clockwise
    iod = np.linalg.norm(up.crop_landmarks[36] - up.crop_landmarks[45])
    err = np.linalg.norm(rot.crop_landmarks - up.crop_landmarks, axis=1).mean() / iod
    err_unaligned = np.linalg.norm(unaligned.crop_landmarks - up.crop_landmarks, axis=1).mean() / iod
    assert err < 0.03 and err_unaligned > 0.15
    diff = np.abs(up.crop.astype(float) - rot.crop.astype(float)).mean()
    assert diff < 10 and np.abs(up.crop.astype(float) - unaligned.crop.astype(float)).mean() > 4 * diff
    # the generated peak pasted back into the rotated photo, rotated back, matches the upright photo's
    fam = StandIn("open")
    peak_up = generate_video(fam, photo, {"surprise": 1.0}, 3, paste=True)[-1]
    peak_rot = generate_video(fam, rotated, {"surprise": 1.0}, 3, paste=True)[-1]
    lm_up = DlibLandmarker.shared().detect_landmarks(peak_up)
    h, w = photo.shape[:2]
    unrotated = cv2.warpAffine(peak_rot, cv2.invertAffineTransform(m), (w, h), flags=cv2.INTER_LINEAR)
    back = DlibLandmarker.shared().detect_landmarks(unrotated)
    iod = np.linalg.norm(lm_up[36] - lm_up[45])
    assert np.linalg.norm(back - lm_up, axis=1).mean() / iod < 0.03
    assert fm.gains(up.landmarks, lm_up)["mouth_open"] > 0.15                 # the mouth really opened
    assert fm.gains(up.landmarks, back)["mouth_open"] > 0.15
    assert np.abs(peak_rot.astype(float) - rotated).mean() < 3                # pasted in place, not shifted


def test_cli_photos_with_a_bare_checkpoint_and_the_shipped_weights(tmp_path, photo_dir, monkeypatch):
    """--model takes a .pt without its run folder (copied elsewhere) and `pretrained` (shipped weights)."""
    from ckpp_tools.cli import main
    from models.pretrained import pretrained_path

    monkeypatch.chdir(tmp_path)
    shutil.copy(pretrained_path(), tmp_path / "mine.pt")
    for model in ("mine.pt", "pretrained"):
        res = CliRunner().invoke(main, ["benchmark", "--photos", str(photo_dir / "unlike"), "--model", model,
                                        "--baselines", "none", "--no-identity", "--gifs", "0", "-o", "wild-" + model])
        assert res.exit_code == 0, res.output
        rep = json.loads((tmp_path / ("wild-" + model) / "report.json").read_text())
        assert list(rep["models"]) == ["ours"] and rep["groups"]["unlike"]
    (tmp_path / "notes.txt").write_text("not weights")
    for bad, text in (("nowhere", "not a checkpoint file"), ("notes.txt", "not a ckpp checkpoint")):
        res = CliRunner().invoke(main, ["benchmark", "--photos", str(photo_dir / "unlike"), "--model", bad,
                                        "--baselines", "none", "-o", "w"])
        assert res.exit_code != 0 and text in res.output and "Traceback" not in res.output, res.output


def test_photo_rows_record_how_many_faces_and_which_was_measured(tmp_path):
    """`benchmark --photos`: a photo with several faces measures the first of the ranking and its row says how
    many were found and which one (rank, box, reasons); a one-face photo says 1."""
    from ckpp_tools import face_pick
    from tests.fakes import group_photo

    photo, _ = group_photo()
    (tmp_path / "p").mkdir()
    iio.imwrite(tmp_path / "p" / "group.png", photo)
    shutil.copy(HOPPER, tmp_path / "p" / "hopper.jpg")
    photos = iw.collect_photos([str(tmp_path / "p")])
    iw.find_faces(photos, progress=False)
    group, hopper = photos
    first = face_pick.faces(photo)[0]
    assert group.faces == 3 and hopper.faces == 1
    assert group.face_used == {"rank": 1, "box": [int(round(v)) for v in first.box], "reasons": first.reasons}
    assert np.array_equal(group.landmarks, first.landmarks)
    md = iw._blocks({"groups": {"p": {"n_faces": 2, "n_photos": 2, "no_face": [], "metrics": {},
                                      "several_faces": [{"photo": "p/group.png", "faces": 3, "face_used": group.face_used}]}}})
    assert any(b[0] == "list" and b[1] and b[1][0].startswith("p/group.png: 3 faces; measured face 1 at [") for b in md)
