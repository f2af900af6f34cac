"""Shared fixtures.

`sample_root`: the SMALL sample tree (`ckpp sample --small --subjects 3 --seed 0`), built once per test
session. It is shared by every test file: treat it as READ-ONLY; copy it (shutil.copytree) if you need
to change anything in it. Its truth is `ckpp_tools.sample.load_truth(sample_root)`.
"""
from __future__ import annotations

import pytest


SAMPLE_KW = dict(subjects=3, seed=0, small=True)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    from ckpp_tools.sample import make_sample

    root = tmp_path_factory.mktemp("sample") / "raw"
    make_sample(root, workers=1, progress=False, **SAMPLE_KW)
    return root
