"""`ckpp sample --resume`: an interrupted run's finished clips are kept, the rest rendered, the result identical
to an uninterrupted run; a finished OUT_DIR is a no-op; other options are refused (sample_resume.py)."""
from __future__ import annotations

import hashlib
import os

import pytest
from click.testing import CliRunner

import ckpp_tools.sample as sample_mod
from ckpp_tools.cli import main
from ckpp_tools.errors import CkppError
from ckpp_tools.sample import make_sample

#: 2 subjects: 4 CK+ sequences and 2 video takes (6 jobs), a second or two
KW = dict(subjects=2, seed=3, small=True, emotions=("happy",), bad_cases=False, workers=1, progress=False)


def tree_digest(root):
    h = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                h[os.path.relpath(os.path.join(dirpath, name), root)] = hashlib.sha1(fh.read()).hexdigest()
    return h


class Crash(Exception):
    pass


def _crash_after(n: int, calls: list, real):
    """A run_job that renders n jobs (recording them in `calls`), then dies as a killed run would."""
    def job_or_crash(job, *a):
        if len(calls) == n:
            raise Crash("killed")
        calls.append(job["rel"])
        return real(job, *a)

    return job_or_crash


def test_resume_keeps_finished_jobs_and_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    ref = make_sample(tmp_path / "ref", **KW)
    real, calls = sample_mod.run_job, []
    monkeypatch.setattr(sample_mod, "run_job", _crash_after(3, calls, real))
    with pytest.raises(Crash):
        make_sample(tmp_path / "raw", **KW)
    assert not (tmp_path / "raw").exists() and (tmp_path / "raw.partial").is_dir()
    done = sorted(os.listdir(tmp_path / "raw.partial" / ".ckpp-sample-done"))
    assert [f for f in done if f.endswith(".json")] == ["000000.json", "000001.json", "000002.json"]

    first, calls[:] = list(calls), []
    monkeypatch.setattr(sample_mod, "run_job", lambda job, *a: (calls.append(job["rel"]), real(job, *a))[1])
    notes = []
    truth = make_sample(tmp_path / "raw", resume=True, log=notes.append, **KW)
    assert len(calls) == 3 and not set(calls) & set(first), "only the unfinished jobs are rendered again"
    assert any("kept 3 finished clip job(s)" in n for n in notes), notes
    assert truth == ref
    assert tree_digest(tmp_path / "raw") == tree_digest(tmp_path / "ref"), "identical files, truth.json, contact sheet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "ref"], "no .partial or lock file left behind"

    # --resume on the finished folder: nothing to do, nothing touched; other options: refused, named
    calls[:] = []
    before = tree_digest(tmp_path / "raw")
    notes = []
    assert make_sample(tmp_path / "raw", resume=True, log=notes.append, **KW) == ref
    assert not calls and tree_digest(tmp_path / "raw") == before and "already complete" in notes[0]
    with pytest.raises(CkppError, match="--seed 3 then, 4 now"):
        make_sample(tmp_path / "raw", resume=True, **dict(KW, seed=4))


def test_resume_of_another_plan_or_without_resume_starts_over(tmp_path, monkeypatch):
    real, calls = sample_mod.run_job, []
    monkeypatch.setattr(sample_mod, "run_job", _crash_after(2, calls, real))
    with pytest.raises(Crash):
        make_sample(tmp_path / "raw", **KW)
    monkeypatch.setattr(sample_mod, "run_job", lambda job, *a: (calls.append(job["rel"]), real(job, *a))[1])
    calls[:], notes = [], []
    make_sample(tmp_path / "raw", resume=True, log=notes.append, **dict(KW, seed=4))
    assert len(calls) == 6 and "other options" in notes[0], "a left-over run of other options is not mixed in"

    calls[:] = []
    monkeypatch.setattr(sample_mod, "run_job", _crash_after(2, calls, real))
    with pytest.raises(Crash):
        make_sample(tmp_path / "b", **KW)
    monkeypatch.setattr(sample_mod, "run_job", lambda job, *a: (calls.append(job["rel"]), real(job, *a))[1])
    calls[:], notes = [], []
    make_sample(tmp_path / "b", log=notes.append, **KW)
    assert len(calls) == 6 and "--resume would have kept them" in notes[0]


def test_cli_resume_and_overwrite_contradict(tmp_path):
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "raw"), "--small", "--resume", "--overwrite"])
    assert res.exit_code != 0 and "--resume and --overwrite contradict" in res.output and "fix:" in res.output
    assert not os.listdir(tmp_path)
