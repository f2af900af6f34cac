"""`ckpp sheet`: a contact sheet of a model's expressions and degrees on one or more photos, as one PNG; thin
over models.contact_sheet. torch imported inside."""
from __future__ import annotations

import os

import click

from ckpp_tools.disk_space import translate


def _degrees(text: str) -> list[float]:
    from ckpp_tools.errors import UsageError

    try:
        return [float(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise UsageError(f"degrees {text!r} are not numbers", path="--degrees",
                         fix="write them comma-separated, e.g. --degrees 0.25,0.5,1") from None


@click.command(context_settings={"show_default": True})
@click.argument("run", type=click.Path())
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="sheet.png", help="Output .png.")
@click.option("--emotion", "emotions", multiple=True,
              help="Expression per column; repeat for several  [default: every expression the model knows]")
@click.option("--degrees", default="0.25,0.5,1",
              help="Degree per row, comma-separated, each in [0, 1]; without 0, a 'frame 0' column shows the start.")
@click.option("--cell", type=click.IntRange(32, 1024), default=128, help="Side of each picture, pixels.")
@click.option("--start", "start", type=click.Choice(["auto", "as-is", "neutral"]), default="auto",
              help="Where each face starts, as in `ckpp generate`.")
@click.option("--device", default="auto", help="auto | cpu | cuda")
@translate(out="output")
def sheet(run, photos, output, emotions, degrees, cell, start, device):
    """Draw what RUN's controls do on each face in PHOTOS: one column per expression, one row per degree (each
    picture is the last frame `ckpp generate RUN PHOTO --emotion E=D` makes).

    \b
    Examples:
      ckpp sheet pretrained grace_hopper.jpg -o sheet.png
      ckpp sheet runs/ours-joint me.jpg you.jpg --emotion happy --emotion surprise --degrees 0,0.5,1
    """
    from ..contact_sheet import check_path, contact_sheet, write_sheet
    from ..pipeline import ExpressionPipeline

    check_path(output)
    degs = _degrees(degrees)
    images = [(os.path.basename(p), ExpressionPipeline.read(p)) for p in photos]  # unreadable: before the model loads
    pipe = ExpressionPipeline.from_pretrained(run, device=device)
    img = contact_sheet(pipe, images, degrees=degs, emotions=list(emotions) or None, cell=cell, start=start, note="")
    write_sheet(img, output)
    click.echo(f"wrote {output}: {img.shape[1]}x{img.shape[0]}, {len(images)} face(s) x {len(degs)} degree(s) x "
               f"{len(emotions) or len(pipe.emotions)} expression(s), {pipe.name} step {pipe.meta.get('step')}")
