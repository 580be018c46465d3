"""Whole real videos through `app.transcribe`, as an upload is read (docs/EXPERIMENTS.md and docs/PERFORMANCE.md,
"Video files").

    python -m bench.videos [--checkpoint PATH] [--words N]

The signademy clips (one person, one letter each, A-Y; 1080x1920 at 30 fps, ~3.7 s) are read whole: letters
against each clip's label. Words: the clips of a word's letters joined into one video (re-encoded at 540x960,
mp4v), read against the word. The model is the one trained without this signer (bench.words's leave-one-signer-out
cache, trained on first use), never one that saw them, unless --checkpoint names another. Speed: seconds of video
read per second of wall time over all clips, with the model's windows batched (transcribe.batch) and one at a time,
side by side in one run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from app.live.session import TrackerPool
from app.transcribe import transcribe
from bench.report import machine_label, write_section
from ml.config import data_path, load_config

# Common words spelled with the clips' letters (no Z, no double letter: the clips cannot rest between two).
WORDS = ["THE", "AND", "FOR", "YOU", "WITH", "HAVE", "THIS", "FROM", "THEY", "WHICH", "WORK", "PLACE", "SIGN",
         "HAND", "BLACK", "QUICK", "JUMP", "FOX", "WORLD", "VOICE"]


def clips(config: dict) -> dict[str, Path]:
    folder = data_path(config, "signademy")
    return {p.stem.upper(): p for p in sorted(folder.glob("*.mp4"))}


def joined(paths: list[Path], out: Path, size=(540, 960)) -> Path:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        capture.release()
    writer.release()
    return out


def stages(path: Path, config: dict, trackers: TrackerPool) -> dict[str, float]:
    """Seconds one clip spends in each stage of reading, as app.transcribe reads it: decoding every frame (grab),
    converting the frames read (retrieve), scaling them, and tracking the hand; the model and speller are the rest."""
    from app.transcribe import Video, fit_width

    video, tracker, spent = Video(path), trackers.acquire(), {"decode": 0.0, "convert": 0.0, "scale": 0.0, "track": 0.0}
    every = max(1, round(video.fps / config["transcribe"]["fps"]))
    index = 0
    while True:
        t0 = time.perf_counter()
        if not video.capture.grab():
            break
        t1 = time.perf_counter()
        spent["decode"] += t1 - t0
        if index % every == 0:
            image = video.capture.retrieve()[1]
            t2 = time.perf_counter()
            image = fit_width(image, config["transcribe"]["max_width"])
            t3 = time.perf_counter()
            tracker.process(image)
            spent["convert"] += t2 - t1
            spent["scale"] += t3 - t2
            spent["track"] += time.perf_counter() - t3
        index += 1
    video.close()
    trackers.release(tracker)
    return spent


def main(argv=None) -> None:
    import torch

    from ml.inference import Predictor

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="default: the model trained without the signademy signer")
    parser.add_argument("--words", type=int, default=len(WORDS), help="how many of WORDS to read")
    parser.add_argument("--speed-clips", type=int, default=None, help="time only the first N clips (default all)")
    args = parser.parse_args(argv)
    config = load_config()
    torch.set_num_threads(int(config["model"]["torch_threads"]))
    if args.checkpoint is None:
        from bench.words import model_path
        args.checkpoint = model_path("signademy")
    predictor = Predictor(args.checkpoint, "cpu")
    trackers = TrackerPool(config["landmarks"])
    videos = clips(config)
    transcribe(next(iter(videos.values())), config, predictor, trackers=trackers)  # warm: graphs, lexicon

    timed = list(videos)[:args.speed_clips]
    spent = {}
    for path in [videos[label] for label in timed]:
        for stage, seconds in stages(path, config, trackers).items():
            spent[stage] = spent.get(stage, 0.0) + seconds

    # Letters, and the speed with batched and unbatched windows, alternating clip by clip.
    rows, wall, duration = [], {}, 0.0
    for label, path in videos.items():
        for batch in (config["transcribe"]["batch"], 1) if label in timed else (config["transcribe"]["batch"],):
            settings = {**config, "transcribe": {**config["transcribe"], "batch": batch}}
            t0 = time.perf_counter()
            transcript = transcribe(path, settings, predictor, trackers=trackers)
            if label in timed:
                wall[batch] = wall.get(batch, 0.0) + time.perf_counter() - t0
        duration += transcript.duration if label in timed else 0.0
        raw = "".join(w.raw for w in transcript.words)
        rows.append((label, raw))
        print(f"{label}: read {raw or '-'}", flush=True)
    exact = sum(raw == label for label, raw in rows)
    found = sum(label in raw for label, raw in rows)

    # Words: clips joined.
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for word in WORDS[:args.words]:
            video = joined([videos[c] for c in word], Path(tmp) / f"{word}.mp4")
            transcript = transcribe(video, config, predictor, trackers=trackers)
            results.append((word, " ".join(w.raw for w in transcript.words), transcript.text))
            print(f"{word}: spelled {results[-1][1] or '-'}, decoded {results[-1][2] or '-'}", flush=True)
    predictor.close()

    n, m = len(rows), len(results)
    letters = "\n".join(f"| {label} | {raw or '(none)'} |" for label, raw in rows)
    words = "\n".join(f"| {w} | {raw or '(none)'} | {text or '(none)'} |" for w, raw, text in results)
    print(f"\nLetters, {n} clips: read exactly {exact} ({100 * exact / n:.1f} %), the label among the letters read "
          f"{found} ({100 * found / n:.1f} %)\n\n| clip | read |\n| --- | --- |\n{letters}\n")
    print(f"Words, {m} joined: spelled right {sum(r == w for w, r, _ in results)}, decoded right "
          f"{sum(t == w for w, _, t in results)}\n\n| word | spelled | decoded |\n| --- | --- | --- |\n{words}\n")
    batch = config["transcribe"]["batch"]
    write_section("videos", f"""## Video files (`python -m app.transcribe`)

`python -m bench.videos{f" --speed-clips {len(timed)}" if len(timed) < n else ""}`: {len(timed)} signademy clips ({duration:.1f} s of 1080x1920 video at 30 fps), each read whole
twice, alternating clip by clip: the model's windows in batches of {batch} (`transcribe.batch`) and one at a time.
{machine_label()}; 1-min load average {os.getloadavg()[0]:.1f} as the run ended (the run's own work included).

| windows to the model | wall time | x real time |
| --- | --- | --- |
| batches of {batch} | {wall[batch]:.1f} s | {duration / wall[batch]:.1f} |
| one at a time | {wall[1]:.1f} s | {duration / wall[1]:.1f} |

Where the time goes (the same clips read once more, stage by stage, the model and speller left out):
{", ".join(f"{stage} {seconds:.1f} s ({100 * seconds / sum(spent.values()):.0f} %)" for stage, seconds in spent.items())}.
""")


if __name__ == "__main__":
    main()
