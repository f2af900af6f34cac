"""The picture README.md opens with: the shipped joint model's seven expressions at degrees 0, 0.5 and 1 on faces
that were never in training (Grace Hopper, matplotlib's sample photo; and a held-out NBA person).

    python benchmarks/joint_contact_sheet.py [--model pretrained] [--out docs/images/joint-contact-sheet.png]

Columns = expressions, rows = degrees, one block per face; each cell is `ckpp generate MODEL PHOTO
--emotion E=D`'s last frame (the face crop as the model makes it, scaled), so what you see is what a user gets.
Drawn by models/contact_sheet.py (also `ckpp sheet` and `ckpp demo`'s sheet).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def faces(held_out: int) -> list[tuple[str, np.ndarray]]:
    import matplotlib

    from ckpp_tools import photo_io

    out = [("Grace Hopper", photo_io.read_photo(os.path.join(matplotlib.get_data_path(), "sample_data",
                                                               "grace_hopper.jpg")))]
    if held_out >= 0:
        from ckpp_tools import photo_sources as ps

        held = sorted(ps.assign(ps.resolve("nba", progress=False), seed=0, hold_out=40).held_out,
                      key=lambda b: b.name)
        b = held[held_out]
        out.append((f"held-out NBA person ({b.name})", photo_io.read_photo(b.path)))
    return out


def main() -> None:
    from models.contact_sheet import contact_sheet, write_sheet
    from models.pipeline import ExpressionPipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pretrained")
    ap.add_argument("--degrees", default="0,0.5,1")
    ap.add_argument("--held-out", type=int, default=0, help="which held-out NBA person (index; -1: none)")
    ap.add_argument("--cell", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "joint-contact-sheet.png"))
    args = ap.parse_args()
    pipe = ExpressionPipeline.from_pretrained(args.model)
    sheet = contact_sheet(pipe, faces(args.held_out), degrees=[float(d) for d in args.degrees.split(",")],
                          cell=args.cell)
    write_sheet(sheet, args.out)
    print("wrote", args.out, sheet.shape, f"(model step {pipe.meta.get('step')})")


if __name__ == "__main__":
    main()
