"""Contact sheets: what a model's controls do, on faces, as one picture — columns = expressions, rows = degrees.

    from models.contact_sheet import contact_sheet, write_sheet
    sheet = contact_sheet(pipe, [("Grace Hopper", "grace_hopper.jpg")], degrees=[0.25, 0.5, 1])   # RGB uint8
    write_sheet(sheet, "sheet.png")

Why its own module: the README's opening picture (benchmarks/joint_contact_sheet.py), `ckpp sheet` and `ckpp demo`
all show the same thing — the expression and its degree as a user picks them — and must draw it the same way.
Each cell is the last frame of `ckpp generate RUN PHOTO --emotion E=D` (ExpressionPipeline.preview: the face found
and encoded once per photo, one decode per cell), the face crop as the model makes it, scaled to the cell. When the
degrees leave out 0, a "frame 0" column shows the face every row starts from.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

LABEL_W, HEAD = 150, 24


def _text(img: np.ndarray, text: str, org: tuple[int, int]) -> None:
    import cv2

    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def contact_sheet(pipe, faces: Iterable[tuple[str, object]], degrees: Sequence[float] = (0.0, 0.5, 1.0),
                  emotions: Sequence[str] | None = None, cell: int = 128, start: str = "auto",
                  note: str = " (never in training)") -> np.ndarray:
    """The sheet as an RGB uint8 array. `pipe`: an ExpressionPipeline; `faces`: (title, photo) pairs, a photo as
    ExpressionPipeline.read takes it (path, array, PIL image); `emotions`: columns (default: all the model
    knows), each checked as --emotion is; `degrees`: rows, each in [0, 1]; `start` as in `ckpp generate`.
    One block per face, its title followed by `note`. A face that cannot be used is a CkppError naming it."""
    import cv2

    from ckpp_tools.errors import UsageError

    # canonical names; an expression the model does not know fails here, named
    emotions = [next(iter(pipe.weights({e: 1.0}))) for e in emotions] if emotions else pipe.emotions
    degrees = [float(d) for d in degrees]
    if not degrees:
        raise UsageError("no degrees given", path="--degrees", fix="e.g. --degrees 0.25,0.5,1")
    bad = [d for d in degrees if not 0.0 <= d <= 1.0]
    if bad:
        raise UsageError(f"degree {bad[0]:g} is outside [0, 1]", path="--degrees", fix="e.g. --degrees 0.25,0.5,1")
    first_col = 0.0 not in degrees                   # show frame 0 once when no row does
    cols = (["frame 0"] if first_col else []) + emotions
    width = LABEL_W + len(cols) * cell
    blank = np.full((cell, cell, 3), 255, np.uint8)

    def fit(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA if img.shape[0] > cell else cv2.INTER_CUBIC)

    top = np.full((HEAD, width, 3), 255, np.uint8)
    for i, name in enumerate(cols):
        _text(top, name, (LABEL_W + i * cell + 8, 17))
    blocks = [top]
    for title, photo in faces:
        where = str(title)
        image = pipe.read(photo, where)
        head = np.full((HEAD, width, 3), 255, np.uint8)
        _text(head, f"{title}{note}", (8, 17))
        blocks.append(head)
        for r, d in enumerate(degrees):
            cells = [fit(pipe.preview(image, {e: d}, start=start, where=where)) for e in emotions]
            if first_col:
                cells.insert(0, fit(pipe.preview(image, {emotions[0]: 0.0}, start=start, where=where))
                             if r == 0 else blank)
            lab = np.full((cell, LABEL_W, 3), 255, np.uint8)
            _text(lab, f"degree {d:g}", (8, cell // 2 + 5))
            blocks.append(np.hstack([lab] + cells))
    return np.vstack(blocks)


def check_path(path: str | os.PathLike) -> str:
    """The output path's extension, checked before any work: .png, .jpg or .jpeg, else a UsageError."""
    from ckpp_tools.errors import UsageError

    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".png", ".jpg", ".jpeg"):
        raise UsageError("a contact sheet is a picture", path=os.fspath(path), fix="name it .png (or .jpg)")
    return ext


def write_sheet(sheet: np.ndarray, path: str | os.PathLike) -> str:
    """Write an RGB sheet as .png (or .jpg) atomically (a `.partial` renamed; a failed write names the file)."""
    import cv2

    from ckpp_tools.disk_space import imwrite

    path = os.fspath(path)
    ext = check_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".partial" + ext
    try:
        imwrite(tmp, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
