"""`ckpp generate`: a video of an expression from one photo, with any trained run. torch imported inside."""
from __future__ import annotations

import os

import click


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
@click.option("--size", type=int, default=None,
              help="Side of the face in the video, pixels. Motion-output models (output=warp) move the photo's own "
                   "face at this size [default: its size in the photo, 256-1024]; pixel models are scaled to it "
                   "[default: 256].")
@click.option("--device", default="auto", help="auto | cpu | cuda")
def generate(run, photo, output, emotions, frames, fps, paste_back, align, start, size, device):
    """Animate the face in PHOTO with the model in RUN (a run folder or a ckpt-*.pt).

    \b
    Examples:
      ckpp generate runs/ours-surprise photo.jpg --emotion surprise -o out.mp4
      ckpp generate runs/ours-happy+anger me.png --emotion happy=0.7 --emotion anger=0.3 --frames 24 -o mix.gif
      ckpp generate pretrained smiling.jpg --emotion surprise --start as-is -o out.gif
    Baselines (convlstm, hp) make their native 10 frames, resampled to --frames.
    """
    from ..checkpoint import load_run
    from ..generate import generate_video, load_photo, parse_weights, write_video
    from ..training_loop import resolve_device

    image = load_photo(photo)             # unreadable photo fails before the model loads
    family, meta = load_run(run, device=str(resolve_device(device)))
    weights = parse_weights(emotions, family.emotions)
    if output is None:
        stem = os.path.splitext(os.path.basename(photo))[0]
        output = f"{stem}-{'+'.join(weights)}.mp4"
    found: dict = {}
    video = generate_video(family, image, weights, frames, paste=paste_back, where=photo, align=align,
                           start=start, report=found, size=size)
    write_video(video, output, fps)
    note = ""
    if getattr(family, "native_frames", None) and family.native_frames != frames:
        note = f" ({family.name} makes {family.native_frames} frames natively; resampled to {frames})"
    click.echo(f"wrote {output}: {len(video)} frames {video.shape[2]}x{video.shape[1]} at {fps:g} fps, "
               f"{family.name} step {meta['step']}{note}")
    expr = found.get("expression", {})
    if found.get("start") == "neutral" and start == "auto":
        click.echo(f"note: the lips in {photo} are parted (inner gap {expr.get('mouth_open', 0):.2f} IOD): the video "
                   "starts from the face warped back to neutral, lips shut, the kind of onset the models learnt "
                   "from (--start as-is keeps the photo as frame 0)", err=True)
