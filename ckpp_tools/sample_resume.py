"""`ckpp sample --resume`: keep the clips an interrupted run had finished.

Why: a sample made from a folder of 1,000 photos renders thousands of clips (hours on 2 cores); a kill -9, a
reboot or a full disk near the end must not cost all of it again. `ckpp sample` writes into OUT.partial/ and
renames it at the end. Each clip job, once its files are complete, leaves a record in OUT.partial/.ckpp-sample-done/
(its truth entries and contact-sheet thumbnails; the .json is written last, so a record exists only whole).
The marker file OUT.partial/.ckpp-sample-partial holds the run's fingerprint (the options that change the
output and every planned job). `--resume` keeps the records when the fingerprint matches and renders only the
other jobs, whose half-written files it overwrites; the result is identical to an uninterrupted run (every
file, truth.json, the contact sheet). Without --resume a left-over OUT.partial of ours is replaced, as before.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from .errors import CkppError

#: marker file in OUT.partial (made by `ckpp sample`; holds the run's fingerprint)
PARTIAL_MARK = ".ckpp-sample-partial"
DONE_DIR = ".ckpp-sample-done"


def _plain(obj):
    """JSON form of a job's values: a base photo by its bytes' hash (its file may move), arrays as lists."""
    if hasattr(obj, "sha1") and hasattr(obj, "landmarks"):
        return {"photo_sha1": obj.sha1}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return repr(obj)


def fingerprint(options: dict, jobs: list[dict]) -> str:
    """What a resumed run must share with the interrupted one: the options that change the output, every planned
    job (which already holds everything drawn from the seed) and the ckpp version (its renderer)."""
    from . import __version__

    h = hashlib.sha256(json.dumps({"version": __version__, "options": options}, sort_keys=True, default=_plain).encode())
    for j in jobs:
        h.update(json.dumps(j, sort_keys=True, default=_plain).encode())
    return h.hexdigest()[:32]


def _read_mark(partial: str) -> str | None:
    try:
        with open(os.path.join(partial, PARTIAL_MARK)) as fh:
            return json.load(fh).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def check_partial(partial: str) -> None:
    """A left-over OUT.partial must be ours (it carries the marker file): never delete anything else."""
    if os.path.exists(partial) and not os.path.isfile(os.path.join(partial, PARTIAL_MARK)):
        raise CkppError("exists and was not made by an interrupted `ckpp sample`", path=partial,
                        fix="move it away or choose another OUT_DIR")


def already_complete(out_dir: str, fp: str, options: dict, log=None) -> dict:
    """`--resume` on a finished OUT_DIR: a no-op when it was made with the same options (its truth), else refuse."""
    with open(os.path.join(out_dir, "truth.json")) as fh:
        truth = json.load(fh)
    if truth.get("fingerprint") == fp:
        if log:
            log(f"{out_dir} is already complete (same options): nothing to resume; left it untouched")
        return truth
    then = truth.get("options") or {}
    diff = [f"--{k.replace('_', '-')} {then.get(k)} then, {v} now" for k, v in options.items()
            if k in then and then.get(k) != v]
    what = "; ".join(diff) or "another ckpp version or plan"
    raise CkppError(f"output is complete but was made with other options ({what}); --resume would mix two runs",
                    path=out_dir, fix="rerun with the finished run's options, or pass --overwrite to replace it")


class Progress:
    """The finished jobs of OUT.partial: `done` maps a job's index to (truth, thumbnails)."""

    def __init__(self, partial: str, fp: str):
        self.partial, self.fp = partial, fp
        self.dir = os.path.join(partial, DONE_DIR)
        self.done: dict[int, tuple[dict, dict]] = {}

    @classmethod
    def open(cls, partial: str, fp: str, resume: bool) -> tuple["Progress", str]:
        """Start OUT.partial (fresh, or kept when resuming the same run); returns (progress, note for the user)."""
        p = cls(partial, fp)
        note = ""
        if os.path.exists(partial):
            check_partial(partial)
            if resume and _read_mark(partial) == fp:
                p._load()
                return p, f"resumed: kept {len(p.done)} finished clip job(s) of the interrupted run in {partial}"
            if resume:
                note = "resume: the left-over run had other options or another plan; starting over"
            else:
                n = len([f for f in _listdir(p.dir) if f.endswith(".json")])
                note = (f"replaced {partial} left by an interrupted run" +
                        (f" ({n} finished clip job(s); --resume would have kept them)" if n else ""))
            shutil.rmtree(partial)
        elif resume:
            note = "resume: nothing to resume; starting from scratch"
        try:
            os.makedirs(p.dir)
            with open(os.path.join(partial, PARTIAL_MARK), "w") as fh:
                json.dump({"fingerprint": fp}, fh)
        except OSError as exc:
            raise CkppError(f"cannot create the output folder ({exc.strerror})", path=partial,
                            fix="choose an OUT_DIR in a folder you can write to") from None
        return p, note

    def _load(self) -> None:
        for name in sorted(_listdir(self.dir)):
            if not name.endswith(".json"):
                continue
            try:
                i = int(name[:-5])
                with open(os.path.join(self.dir, name)) as fh:
                    rec = json.load(fh)
                with np.load(os.path.join(self.dir, f"{i:06d}.npz"), allow_pickle=False) as z:
                    thumbs = {rel: [z[f"{k}_{t}"] for t in range(n)] for k, (rel, n) in enumerate(rec["thumbs"])}
                self.done[i] = (rec["truth"], thumbs)
            except (OSError, ValueError, KeyError, TypeError):
                continue   # a damaged record: that job is rendered again

    def record(self, i: int, truth: dict, thumbs: dict) -> None:
        """Job i is finished (its files are complete): save what the final truth.json and contact sheet need."""
        arrays = {f"{k}_{t}": a for k, (rel, ths) in enumerate(thumbs.items()) for t, a in enumerate(ths)}
        npz = os.path.join(self.dir, f"{i:06d}.npz")
        with open(npz + ".tmp", "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(npz + ".tmp", npz)
        js = os.path.join(self.dir, f"{i:06d}.json")
        with open(js + ".tmp", "w") as fh:
            fh.write(json.dumps({"truth": truth, "thumbs": [[rel, len(ths)] for rel, ths in thumbs.items()]},
                                separators=(",", ":")))
        os.replace(js + ".tmp", js)

    def finish(self) -> None:
        """The run is complete: drop the records and the marker (a folder without the marker is complete)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        os.remove(os.path.join(self.partial, PARTIAL_MARK))


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []
