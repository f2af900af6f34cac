"""The HDF5 contract (DESIGN §4), as constants other modules import instead of spelling names again.

`validate(path)` (in this module) checks a file against every rule and returns a list of problems.
"""
from __future__ import annotations

FORMAT = "ckpp"
SCHEMA_VERSION = 1

#: root attributes every master file carries
ROOT_ATTRS = ("format", "schema_version", "ckpp_version", "image_size", "landmark_backend", "created", "config")

MANIFEST = "manifest"
CLIPS = "clips"
#: manifest columns, in order; strings are UTF-8 variable length, numbers int
MANIFEST_STR_COLUMNS = ("clip_id", "source", "subject", "emotion", "take", "status", "reason", "detail", "split", "shard")
MANIFEST_INT_COLUMNS = ("n_source_frames", "onset", "peak")
MANIFEST_COLUMNS = (
    "clip_id", "source", "subject", "emotion", "take", "status", "reason", "detail",
    "n_source_frames", "onset", "peak", "split", "shard",
)

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
SPLITS = ("train", "val", "test")

#: reject reasons (DESIGN §5): exactly one per rejected clip
REASONS = (
    "unreadable", "too_short", "no_face", "multiple_faces", "blurry", "head_motion",
    "unlabelled", "unknown_emotion", "no_expression", "duplicate", "too_long",
)

#: per-clip datasets
FRAMES = "frames"            # (T,S,S,3) uint8 RGB, one frame per chunk
LANDMARKS = "landmarks"      # (T,68,2) float32, stored-pixel (x, y)
MOUTH_MASK = "mouth_mask"    # (T,S,S) uint8 {0,1}
DEGREE = "degree"            # (T,) float32, 0 at onset .. 1 at peak
SOURCE_INDEX = "source_index"  # (T,) int32
CLIP_DATASETS = (FRAMES, LANDMARKS, MOUTH_MASK, DEGREE, SOURCE_INDEX)
CLIP_ATTRS = ("subject", "emotion", "emotion_code", "source", "split", "fps", "original_size", "crop_box",
              "blur_score", "head_motion")

#: iBUG-68 index groups
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
MOUTH = tuple(range(48, 68))
OUTER_LIP = tuple(range(48, 60))
INNER_LIP = tuple(range(60, 68))

#: horizontal-flip permutation of the 68 iBUG points (index i of the flipped face = FLIP_68[i] of the original)
FLIP_68 = (
    list(range(16, -1, -1))            # jaw
    + list(range(26, 21, -1))          # brows swap
    + list(range(21, 16, -1))
    + [27, 28, 29, 30]                 # nose bridge
    + [35, 34, 33, 32, 31]             # nose bottom
    + [45, 44, 43, 42, 47, 46]         # eyes swap
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]                  # inner lip
)
assert len(FLIP_68) == 68 and sorted(FLIP_68) == list(range(68))


def validate(path: str, check_masks: bool = True) -> list[str]:
    """_validate, with a file too damaged to read through (a bit flip in HDF5 metadata raises OSError deep in
    h5py) reported as one problem instead of a traceback."""
    try:
        return _validate(path, check_masks)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        return [f"{path}: part of the file cannot be read ({type(exc).__name__}: {str(exc)[:200]}): it is damaged; "
                f"re-run ckpp prepare"]


def _validate(path: str, check_masks: bool = True) -> list[str]:
    """Every rule of the HDF5 contract (DESIGN §4/§5) checked on the master at `path` and the shards it links;
    returns human-readable problems (empty when the file is valid). Reads the manifest, all small per-clip
    arrays and (check_masks) the masks; frames are checked by shape/dtype/chunking only."""
    import json as _json
    import os as _os
    from datetime import datetime as _dt

    import h5py
    import numpy as np

    from .emotions import CODES

    problems: list[str] = []
    add = problems.append
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        return [f"cannot open {path} as HDF5: {exc}"]

    def s(v):
        return v.decode("utf-8") if isinstance(v, bytes) else v

    with f:
        a = f.attrs
        for k in ROOT_ATTRS:
            if k not in a:
                add(f"root attribute {k!r} missing")
        if "format" in a and s(a["format"]) != FORMAT:
            add(f"root attribute format is {s(a['format'])!r}, not {FORMAT!r}")
        if "schema_version" in a and not (np.issubdtype(np.asarray(a["schema_version"]).dtype, np.integer) and int(a["schema_version"]) == SCHEMA_VERSION):
            add(f"schema_version is {a['schema_version']!r}, expected integer {SCHEMA_VERSION}")
        S = None
        if "image_size" in a:
            try:
                S = int(a["image_size"])
                assert S > 0 and np.issubdtype(np.asarray(a["image_size"]).dtype, np.integer)
            except (AssertionError, TypeError, ValueError):
                add(f"image_size {a['image_size']!r} is not a positive integer")
                S = None
        for k in ("ckpp_version", "landmark_backend", "created", "config"):
            if k in a and not isinstance(s(a[k]), str):
                add(f"root attribute {k!r} is not a string")
        if "created" in a:
            try:
                _dt.fromisoformat(str(s(a["created"])))
            except ValueError:
                add(f"created {s(a['created'])!r} is not ISO 8601")
        if "config" in a:
            try:
                _json.loads(s(a["config"]))
            except (ValueError, TypeError):
                add("config is not valid JSON")
        run_id = str(s(a.get("run_id", "")))
        try:
            shard_run_ids = _json.loads(s(a.get("shard_run_ids", "{}")) or "{}")
        except ValueError:
            shard_run_ids = {}
            add("shard_run_ids is not valid JSON")

        # ---- manifest
        if MANIFEST not in f or not isinstance(f[MANIFEST], h5py.Group):
            add("/manifest group missing")
            return problems
        m = f[MANIFEST]
        n_before = len(problems)
        cols = {}
        n = None
        for c in MANIFEST_COLUMNS:
            if c not in m:
                add(f"/manifest column {c!r} missing")
                continue
            d = m[c]
            if not isinstance(d, h5py.Dataset) or d.ndim != 1:
                add(f"/manifest/{c} is not a 1-D dataset")
                continue
            if c in MANIFEST_STR_COLUMNS:
                sinfo = h5py.check_string_dtype(d.dtype)
                if sinfo is None or sinfo.length is not None or sinfo.encoding != "utf-8":
                    add(f"/manifest/{c} is not a variable-length UTF-8 string column (dtype {d.dtype})")
                cols[c] = [s(x) for x in d[()]]
            else:
                if not np.issubdtype(d.dtype, np.integer):
                    add(f"/manifest/{c} is not an integer column (dtype {d.dtype})")
                cols[c] = [int(x) for x in d[()]]
            if n is None:
                n = len(cols[c])
            elif len(cols[c]) != n:
                add(f"/manifest/{c} has {len(cols[c])} rows, other columns {n}")
        if len(problems) > n_before or n is None:
            return problems
        rows = [{c: cols[c][i] for c in MANIFEST_COLUMNS} for i in range(n)]
        ids = [r["clip_id"] for r in rows]
        dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if dup:
            add(f"duplicate clip_id in manifest: {', '.join(dup[:5])}")
        subj_split: dict[str, set] = {}
        accepted = {}
        for r in rows:
            cid = r["clip_id"] or "<empty id>"
            if not r["clip_id"] or "/" in r["clip_id"]:
                add(f"manifest row {cid}: clip_id must be non-empty and contain no '/'")
            st = r["status"]
            if st not in (STATUS_ACCEPTED, STATUS_REJECTED):
                add(f"{cid}: status {st!r} is not accepted|rejected")
                continue
            if st == STATUS_ACCEPTED:
                accepted[r["clip_id"]] = r
                if r["reason"]:
                    add(f"{cid}: accepted but reason is {r['reason']!r} (must be empty)")
                if r["split"] not in SPLITS:
                    add(f"{cid}: accepted but split {r['split']!r} is not one of {SPLITS}")
                if not r["shard"]:
                    add(f"{cid}: accepted but shard is empty")
                if r["emotion"] not in CODES:
                    add(f"{cid}: accepted with non-canonical emotion {r['emotion']!r}")
                if not (0 <= r["onset"] <= r["peak"]):
                    add(f"{cid}: accepted needs 0 <= onset <= peak (got {r['onset']}, {r['peak']})")
                if r["n_source_frames"] >= 0 and r["peak"] >= r["n_source_frames"]:
                    add(f"{cid}: peak {r['peak']} beyond n_source_frames {r['n_source_frames']}")
                subj_split.setdefault(r["subject"], set()).add(r["split"])
            else:
                if r["reason"] not in REASONS:
                    add(f"{cid}: rejected with reason {r['reason']!r}, not one of {', '.join(REASONS)}")
                if r["split"] or r["shard"]:
                    add(f"{cid}: rejected but split/shard not empty ({r['split']!r}, {r['shard']!r})")
            for c in ("onset", "peak"):
                if r[c] < -1:
                    add(f"{cid}: {c} {r[c]} < -1")
        for subj, sp in sorted(subj_split.items()):
            if len(sp) > 1:
                add(f"subject {subj!r} appears in several splits {sorted(sp)} (splits must be subject-disjoint)")

        # ---- clips
        if CLIPS not in f:
            add("/clips group missing")
            return problems
        clips = f[CLIPS]
        present = set(clips.keys())
        for cid in sorted(present - set(accepted)):
            add(f"/clips/{cid} exists but the manifest does not list it as accepted")
        base = _os.path.dirname(_os.path.abspath(path))
        checked_shards: dict[str, bool] = {}
        for cid, r in sorted(accepted.items()):
            if cid not in present:
                add(f"{cid}: accepted but /clips/{cid} missing")
                continue
            link = clips.get(cid, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                fn = link.filename
                if _os.path.isabs(fn):
                    add(f"{cid}: external link uses an absolute path {fn!r} (must be relative)")
                if fn != r["shard"]:
                    add(f"{cid}: external link points to {fn!r} but manifest shard is {r['shard']!r}")
                if fn not in checked_shards:
                    p = _os.path.join(base, fn)
                    ok = _os.path.isfile(p)
                    if not ok:
                        add(f"shard file {fn!r} missing (needed by {cid})")
                    else:
                        try:
                            with h5py.File(p, "r") as sf:
                                got = str(s(sf.attrs.get("run_id", "")))
                                want = shard_run_ids.get(fn, run_id)
                                if want and got != want:
                                    add(f"shard {fn!r} carries run id {got!r}, the master expects {want!r} (foreign or stale shard)")
                                    ok = False
                        except OSError as exc:
                            add(f"shard {fn!r} cannot be opened: {exc}")
                            ok = False
                    checked_shards[fn] = ok
                if not checked_shards[fn]:
                    continue
            try:
                g = clips[cid]
            except (KeyError, OSError) as exc:
                add(f"{cid}: /clips/{cid} does not resolve ({exc})")
                continue
            problems.extend(_validate_clip(cid, g, r, S, check_masks))
    return problems


def _validate_clip(cid, g, r, S, check_masks) -> list[str]:
    import h5py
    import numpy as np

    from .emotions import CODES

    out = []
    add = out.append
    for name in CLIP_DATASETS:
        if name not in g or not isinstance(g[name], h5py.Dataset):
            add(f"{cid}: dataset {name!r} missing")
    if out:
        return out
    fr, lm, mm, dg, si = (g[n] for n in CLIP_DATASETS)
    T = fr.shape[0] if fr.ndim >= 1 else 0
    if T < 1:
        add(f"{cid}: no frames")
        return out
    exp = {FRAMES: ((T, S, S, 3), np.uint8), LANDMARKS: ((T, 68, 2), np.float32), MOUTH_MASK: ((T, S, S), np.uint8),
           DEGREE: ((T,), np.float32), SOURCE_INDEX: ((T,), np.int32)}
    for name, (shape, dt) in exp.items():
        d = g[name]
        if S is not None and d.shape != shape:
            add(f"{cid}/{name}: shape {d.shape}, expected {shape}")
        if d.dtype != dt:
            add(f"{cid}/{name}: dtype {d.dtype}, expected {np.dtype(dt)}")
    if S is not None and fr.chunks != (1, S, S, 3):
        add(f"{cid}/frames: chunks {fr.chunks}, expected one frame per chunk (1,{S},{S},3)")
    if out:
        return out
    lmv = lm[()]
    if not np.all(np.isfinite(lmv)):
        add(f"{cid}/landmarks: non-finite values")
    elif S is not None and (lmv.min() < -S or lmv.max() > 2 * S):
        add(f"{cid}/landmarks: values far outside the {S}x{S} frame (not in stored pixels?)")
    d = dg[()]
    want = np.linspace(0, 1, T, dtype=np.float64) if T > 1 else np.zeros(1)
    if not np.allclose(d, want, atol=1e-5):
        add(f"{cid}/degree: not (t-1)/(T-1) (0 at onset .. 1 at peak)")
    idx = si[()]
    if r["onset"] >= 0 and not np.array_equal(idx, np.arange(r["onset"], r["onset"] + T)):
        add(f"{cid}/source_index: not onset..peak ({r['onset']}..{r['peak']}) one by one")
    if r["peak"] - r["onset"] + 1 != T:
        add(f"{cid}: T={T} frames but onset..peak spans {r['peak'] - r['onset'] + 1}")
    if check_masks:
        vals = np.unique(mm[()])
        if not set(vals.tolist()) <= {0, 1}:
            add(f"{cid}/mouth_mask: values {vals.tolist()[:5]} not in {{0,1}}")
    at = g.attrs
    for k in CLIP_ATTRS:
        if k not in at:
            add(f"{cid}: attribute {k!r} missing")
    if any(k not in at for k in CLIP_ATTRS):
        return out

    def sv(v):
        return v.decode("utf-8") if isinstance(v, bytes) else v

    for k in ("subject", "emotion", "source", "split"):
        if str(sv(at[k])) != str(r[k]):
            add(f"{cid}: attribute {k}={sv(at[k])!r} but manifest says {r[k]!r}")
    if r["emotion"] in CODES and int(at["emotion_code"]) != CODES[r["emotion"]]:
        add(f"{cid}: emotion_code {at['emotion_code']} != {CODES[r['emotion']]} for {r['emotion']}")
    osz = np.asarray(at["original_size"]).reshape(-1)
    if osz.size != 2 or np.any(osz <= 0):
        add(f"{cid}: original_size {osz.tolist()} is not [W,H]")
    cb = np.asarray(at["crop_box"], dtype=np.float64).reshape(-1)
    if cb.size != 4 or not np.all(np.isfinite(cb)):
        add(f"{cid}: crop_box {cb.tolist()} is not [x0,y0,x1,y1]")
    else:
        w, h = cb[2] - cb[0], cb[3] - cb[1]
        if w <= 0 or abs(w - h) > 1e-3 * max(w, 1.0):
            add(f"{cid}: crop_box {cb.tolist()} is not a square with x1>x0")
    for k in ("fps", "blur_score", "head_motion"):
        try:
            float(at[k])
        except (TypeError, ValueError):
            add(f"{cid}: attribute {k} is not a number")
    return out
