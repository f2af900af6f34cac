"""`ckpp app`: a local web page with one slider per expression over a photo (models.app). Gradio and torch are
imported inside, so `ckpp --help` stays light; without gradio the command says how to install it."""
from __future__ import annotations

import click


@click.command(context_settings={"show_default": True})
@click.option("--model", default="pretrained",
              help="Model selected at start: pretrained, pretrained:NAME, a run folder or a ckpt-*.pt.")
@click.option("--runs", default="runs", type=click.Path(file_okay=False),
              help="Folder whose run folders the page offers as models (besides the shipped weights).")
@click.option("--host", default="127.0.0.1",
              help="Address to listen on; 127.0.0.1 keeps the page on this machine (0.0.0.0: every network).")
@click.option("--port", type=int, default=7860, help="Port to listen on.")
@click.option("--share", is_flag=True,
              help="Also open a public gradio.live link (contacts Gradio's servers; off unless asked).")
@click.option("--device", default="auto", help="auto | cpu | cuda")
@click.option("--threads", type=int, default=0,
              help="CPU threads per job (a preview and a video run at once); 0: half the cores, at least 1.")
def app(model, runs, host, port, share, device, threads):
    """A web page to control a face's expression with sliders: upload or pick a photo, move a slider per
    expression (several at once = a mix), watch the peak follow, get the video (mp4/GIF).

    \b
    Needs the app extra:  pip install -e ".[app]"
    Examples:
      ckpp app                                   # http://127.0.0.1:7860, shipped weights + runs/
      ckpp app --model runs/ours-happy+surprise --port 8080
    Nothing is downloaded; nothing listens beyond this machine unless --host or --share says so.
    """
    from ..app import launch

    launch(model=model, runs=runs, host=host, port=port, share=share, device=device, threads=threads)
