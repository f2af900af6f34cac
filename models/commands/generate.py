"""`ckpp generate`: a video of an expression from one photo, with any trained run; thin over the Python API
(models.pipeline.ExpressionPipeline). torch imported inside."""
from __future__ import annotations

import os

import click

from ckpp_tools.disk_space import translate


@click.command(context_settings={"show_default": True})
@click.argument("run", type=click.Path())
@click.argument("photo", type=click.Path())
@click.option("-o", "--output", default=None, help="Output .mp4 or .gif  [default: <photo>-<emotions>.mp4]")
@click.option("--emotion", "emotions", multiple=True, required=True,
              help="NAME or NAME=WEIGHT (weight in [0,1], default 1); repeat to mix emotions.")
@click.option("--frames", type=int, default=16, help="Frames; degrees a = 0…1 (both ends) times the weights.")
@click.option("--fps", type=float, default=8.0, help="Frames per second of the video.")
@click.option("--paste-back", is_flag=True, help="Paste the generated face back into the whole photo.")
@click.option("--align/--no-align", default=True,
              help="Level the eyes of a tilted face before the model (rotated back with --paste-back).")
@click.option("--start", "start", type=click.Choice(["auto", "as-is", "neutral"]), default="auto",
              help="Where the video starts: 'neutral' warps the face back to neutral, lips shut, before the model "
                   "(the models learnt from neutral onsets; parted lips leave the mouth less to open), 'auto' does "
                   "so only when the lips are parted (measured best, docs/recipe.md), 'as-is' keeps the photo as "
                   "frame 0.")
@click.option("--face", type=int, default=None,
              help="Which face of a photo with several: its number in the list generate prints (1 = the main face: "
                   "large, central, whole in the frame).  [default: 1]")
@click.option("--size", type=int, default=None,
              help="Side of the face in the video, pixels. Motion-output models (output=warp) move the photo's own "
                   "face at this size [default: its size in the photo, 256-1024]; pixel models are scaled to it "
                   "[default: 256].")
@click.option("--device", default="auto", help="auto | cpu | cuda")
@translate(out="output")
def generate(run, photo, output, emotions, frames, fps, paste_back, align, start, face, size, device):
    """Animate the face in PHOTO with the model in RUN (a run folder or a ckpt-*.pt).

    \b
    Examples:
      ckpp generate runs/ours-surprise photo.jpg --emotion surprise -o out.mp4
      ckpp generate runs/ours-happy+anger me.png --emotion happy=0.7 --emotion anger=0.3 --frames 24 -o mix.gif
      ckpp generate pretrained smiling.jpg --emotion surprise --start as-is -o out.gif
      ckpp generate pretrained group.jpg --emotion happy --face 2
    Baselines (convlstm, hp) make their native 10 frames, resampled to --frames. A photo with several faces:
    the largest, most central face whole in the frame is animated and the others are listed (--face N).
    """
    from ..pipeline import ExpressionPipeline

    image = ExpressionPipeline.read(photo)  # unreadable photo fails before the model loads
    pipe = ExpressionPipeline.from_pretrained(run, device=device)
    weights = pipe.weights(emotions)
    if output is None:
        stem = os.path.splitext(os.path.basename(photo))[0]
        output = f"{stem}-{'+'.join(weights)}.mp4"
    out = pipe(image, weights, frames, paste_back=paste_back, align=align, start=start, fps=fps, where=photo,
               face=face, size=size)
    out.save(output)
    video, family = out.frames, pipe.family
    note = ""
    if getattr(family, "native_frames", None) and family.native_frames != frames:
        note = f" ({family.name} makes {family.native_frames} frames natively; resampled to {frames})"
    click.echo(f"wrote {output}: {len(video)} frames {video.shape[2]}x{video.shape[1]} at {fps:g} fps, "
               f"{family.name} step {pipe.meta['step']}{note}")
    if out.face.note:
        click.echo(f"note: {photo}: {out.face.note}", err=True)
    expr = out.face.expression
    if out.face.start == "neutral" and start == "auto":
        click.echo(f"note: the lips in {photo} are parted (inner gap {expr.get('mouth_open', 0):.2f} IOD): the video "
                   "starts from the face warped back to neutral, lips shut, the kind of onset the models learnt "
                   "from (--start as-is keeps the photo as frame 0)", err=True)
