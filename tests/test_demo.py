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


def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--out", str(out), "--small", "--subjects", "3", "--steps", "3",
                                    "--baseline-steps", "2"])
    assert res.exit_code == 0, res.output
    for model in ("ours", "convlstm", "hp"):
        assert (out / "runs" / f"{model}-surprise" / "run.json").is_file()
    assert (out / "surprise.gif").stat().st_size > 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert report
    assert (out / "report" / "report.md").is_file() and (out / "report" / "fig3_curves.png").is_file()
    assert "ckpp demo finished" in res.output


def test_demo_unlike_group_holds_the_built_in_and_shipped_faces(tmp_path):
    from ckpp_tools.commands.demo import _unlike_photos

    names = _unlike_photos(tmp_path / "unlike")
    assert names == ["astronaut.png", "grace_hopper.png", "biden.jpg", "kanade.jpg", "obama.jpg"]
    assert sorted(p.name for p in (tmp_path / "unlike").iterdir()) == sorted(names)
