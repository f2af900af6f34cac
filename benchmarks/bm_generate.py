"""Generation latency of 10 frames: the main model's one batched pass vs the recurrent baselines.

The main model encodes the first frame once and decodes all degrees a = 0…1 as one batch; ConvLSTM must
roll its cell step by step before its (batched) decode; HP rolls its landmark LSTM, renders heatmaps and
runs a pose encoder per frame — and, given a photo, first finds the face's landmarks with dlib. Each is
timed through the common interface `family.generate(first, weights, 10)` with untrained weights (speed
does not depend on training), median of --repeats after warm-up, device synchronised.

    python benchmarks/bm_generate.py                         # tiny config on CPU
    python benchmarks/bm_generate.py --config paper --device cuda --amp bf16

Also times the naive way to get a video from the main model (one call per frame) in the same run.
Writes JSON (default benchmarks/results/bm_generate-<config>-<device>.json) and prints ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.config import load_config  # noqa: E402
from models.family import Runtime  # noqa: E402
from models.registry import get_family  # noqa: E402


def timed(cases: dict, repeats: dict, device: torch.device, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each case. Cases are interleaved round by round, so a load change on a shared
    machine hits all of them alike instead of whichever ran at that moment."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync()
    out = {name: [] for name in cases}
    for r in range(max(repeats.values())):
        for name, fn in cases.items():
            if r >= repeats[name]:
                continue
            t0 = time.perf_counter()
            fn()
            sync()
            out[name].append(time.perf_counter() - t0)
    return out


def naive_ours(fam, first, w, n):
    """The main model frame by frame: n calls of f(I, a_k), re-encoding the image each time."""
    with fam.autocast():
        return [fam.G(first, w * (k / max(n - 1, 1)))[0] for k in range(n)]


def face_crop(size: int) -> torch.Tensor:
    """skimage's astronaut, cropped as ckpp crops faces, (1,3,S,S) in [-1,1] (HP's dlib step needs a face)."""
    from skimage import data

    from ckpp_tools.crop import crop_box, crop_image
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    from models.generate import shrink_box

    img = data.astronaut()
    lm = DlibLandmarker.shared().detect_landmarks(img)
    crop = crop_image(img, shrink_box(crop_box(lm), 256 / 289), size)
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(127.5).sub(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", help="tiny | paper | FILE.json")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", default="none", choices=["none", "bf16"])
    ap.add_argument("--batch", type=int, default=1, help="videos per call")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 gives steadier numbers on a shared CPU)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cfg = load_config(args.config)
    rt = Runtime(device=device, amp_dtype=torch.bfloat16 if args.amp == "bf16" else None,
                 channels_last=device.type == "cuda")
    torch.manual_seed(0)
    first = face_crop(cfg.image_size).repeat(args.batch, 1, 1, 1).to(device)
    if rt.channels_last:
        first = first.contiguous(memory_format=torch.channels_last)
    w = torch.ones(args.batch, 1, device=device)
    n = args.frames

    fams = {name: get_family(name)(cfg, ["surprise"]).attach(rt, train=False) for name in ("ours", "convlstm", "hp")}
    from models.baselines.hierarchical import first_landmarks

    lms = first_landmarks(first, cfg.crop_fraction)
    cases = {
        "ours (one batched pass)": lambda: fams["ours"].generate(first, w, n),
        "ours (naive: one pass per frame)": lambda: naive_ours(fams["ours"], first, w, n),
        "convlstm": lambda: fams["convlstm"].generate(first, w, n),
        "hp (landmarks given)": lambda: fams["hp"].generate(first, w, n, landmarks=lms),
        "hp (+ dlib on the crop)": lambda: fams["hp"].generate(first, w, n),
    }
    with torch.inference_mode():
        times = timed(cases, {name: args.repeats for name in cases}, device)
    results = {name: {"median_s": statistics.median(ts), "min_s": min(ts), "repeats": len(ts)}
               for name, ts in times.items()}
    base = results["ours (one batched pass)"]["median_s"]
    print(f"generation of {n} frames x {args.batch} video(s), config {args.config} ({cfg.image_size}²), "
          f"{device.type}, amp {args.amp}")
    for name, r in results.items():
        r["ratio_vs_ours"] = r["median_s"] / base
        print(f"  {name:34s} {r['median_s'] * 1e3:9.2f} ms   x{r['ratio_vs_ours']:.2f} of ours")
    params = {k: sum(f.num_parameters().values()) for k, f in fams.items()}
    report = {
        "benchmark": "bm_generate", "config": args.config, "image_size": cfg.image_size, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(), "amp": args.amp, "batch": args.batch, "frames": n,
        "parameters": params, "results": results,
    }
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"bm_generate-{os.path.basename(str(args.config)).split('.')[0]}-{device.type}.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".partial"
    with open(tmp, "w") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
