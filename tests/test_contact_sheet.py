"""`ckpp sheet` / models.contact_sheet: every expression x degree of a model on a face, as one picture."""
import numpy as np
from click.testing import CliRunner

from ckpp_tools.cli import main


def _photo(tmp_path):
    import os

    import matplotlib  # Grace Hopper: never in the shipped model's training

    return os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def test_sheet_of_the_shipped_model(tmp_path):
    from PIL import Image

    from models.contact_sheet import HEAD, LABEL_W

    out = tmp_path / "s.png"
    res = CliRunner().invoke(main, ["sheet", "pretrained", _photo(tmp_path), "--emotion", "happy", "--emotion",
                                    "surprised", "--degrees", "0,1", "--cell", "64", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 face(s) x 2 degree(s) x 2 expression(s)" in res.output
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape == (2 * HEAD + 2 * 64, LABEL_W + 2 * 64, 3)       # degree 0 is a row: no frame-0 column

    def cell(r, c):
        return sheet[2 * HEAD + r * 64:2 * HEAD + (r + 1) * 64, LABEL_W + c * 64:LABEL_W + (c + 1) * 64]

    assert np.abs(cell(0, 0) - cell(0, 1)).mean() < 1                  # degree 0: the same face in every column
    for c in range(2):
        assert np.abs(cell(1, c) - cell(0, c)).mean() > 1               # degree 1 moves it
    assert np.abs(cell(1, 0) - cell(1, 1)).mean() > 1                  # happy is not surprise
    assert not list(tmp_path.glob("*.partial*"))


def test_sheet_refuses_bad_input(tmp_path):
    photo = _photo(tmp_path)
    cases = [(["--degrees", "0,1.5"], "degree 1.5 is outside [0, 1]"),
             (["--degrees", "a,b"], "are not numbers"),
             (["--emotion", "bored"], "not one this model was trained on"),
             (["-o", str(tmp_path / "s.txt")], "a contact sheet is a picture")]
    for extra, text in cases:
        res = CliRunner().invoke(main, ["sheet", "pretrained", photo, "-o", str(tmp_path / "s.png"), *extra])
        assert res.exit_code != 0 and text in res.output, (extra, res.output)
    res = CliRunner().invoke(main, ["sheet", "pretrained", str(tmp_path / "none.jpg"), "-o", str(tmp_path / "s.png")])
    assert res.exit_code != 0 and "none.jpg" in res.output
    assert not list(tmp_path.glob("*.png"))
