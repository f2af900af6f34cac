"""`ckpp demo` (the README's first command) end to end at smoke-test size, and its refusal to clobber a folder."""
import json

from click.testing import CliRunner

from ckpp_tools.cli import main


def test_demo_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert str(tmp_path) in res.output and "not empty" in res.output and "--overwrite" in res.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_sample_photos_option(tmp_path):
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "bad"), "--photos", "bob"])
    assert res.exit_code != 0 and "unknown base photo" in res.output and "astronaut" in res.output
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "raw"), "--small", "--photos", "astronaut"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "raw" / "truth.json").read_text())["photos"] == ["astronaut"]


def _cell(sheet, row: int, col: int, cell: int = 128):
    """One picture of a contact sheet (models/contact_sheet.py's layout: a header, a title per face)."""
    from models.contact_sheet import HEAD, LABEL_W

    y, x = 2 * HEAD + row * cell, LABEL_W + col * cell
    return sheet[y:y + cell, x:x + cell].astype(int)


def test_demo_runs_the_whole_chain(tmp_path):
    import numpy as np
    from PIL import Image

    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--out", str(out), "--small", "--subjects", "3", "--steps", "3",
                                    "--baseline-steps", "2"])
    assert res.exit_code == 0, res.output
    # ours learns every expression with training clips (the small set from one photo lacks fear and sadness)
    ours = json.loads((out / "runs" / "ours-joint" / "run.json").read_text())
    assert ours["emotions"] == ["anger", "contempt", "disgust", "happy", "surprise"]
    for model in ("convlstm", "hp"):
        assert (out / "runs" / f"{model}-surprise" / "run.json").is_file()
    # the contact sheet: a frame-0 column, then one per expression; rows = degrees 0.25, 0.5, 1
    sheet = np.asarray(Image.open(out / "expressions.png").convert("RGB"))
    assert sheet.shape == (2 * 24 + 3 * 128, 150 + 6 * 128, 3)
    start = _cell(sheet, 0, 0)
    assert start.std() > 0                                   # a picture, not a blank cell
    surprise = [np.abs(_cell(sheet, r, 5) - start).mean() for r in range(3)]
    assert 0 < surprise[0] < surprise[2], surprise           # the degree moves the face, more at 1 than at 0.25
    # the mix: a real GIF whose last frame is not its first
    gif = Image.open(out / "mix-happy+surprise.gif")
    assert gif.n_frames == 16
    first = np.asarray(gif.convert("RGB")).astype(int)
    gif.seek(gif.n_frames - 1)
    assert np.abs(np.asarray(gif.convert("RGB")).astype(int) - first).mean() > 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert report
    assert (out / "report" / "report.md").is_file() and (out / "report" / "fig3_curves.png").is_file()
    assert "ckpp demo finished" in res.output
    assert "expressions.png" in res.output and "mix-happy+surprise.gif" in res.output


def test_demo_unlike_group_holds_the_built_in_and_shipped_faces(tmp_path):
    from ckpp_tools.commands.demo import _unlike_photos

    names = _unlike_photos(tmp_path / "unlike")
    assert names == ["astronaut.png", "grace_hopper.png", "biden.jpg", "kanade.jpg", "obama.jpg"]
    assert sorted(p.name for p in (tmp_path / "unlike").iterdir()) == sorted(names)
