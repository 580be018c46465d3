"""The page's hand tracker against the server's, on the same real photos and clips (docs/EXPERIMENTS.md,
docs/PERFORMANCE.md).

    python -m bench.page_tracker [--per-class 4] [--sources kaggle ayuraj ankara signademy] [--section NAME]

Each photo, shaped as the page's webcam frame (480x360), is held for HELD frames in tracking mode, the tracker reset
before it, as a held sign is read live; each signademy clip is played at the page's 15 fps, 480 wide, and read frame
by frame as the live window reads it (its held second half scored). Both by static/js/tracker.js in Debian's
headless Chromium (software rendering, the page's settings) and by the server's ml.landmarks.HandTracker
(config.yaml's settings). Compared: hands found, handedness, landmark distance (pixels of the 480-wide frame) and
the letters the model reads (the shipped model; it never saw the ankara students, it did see the other sources'
signers, so only the difference between the two trackers is meant there). Also the page tracker's speed: frames a
second over the same frames (each photo's first frame a palm detection), and as the live page shows it (a fake camera
holding one hand in view).
"""
from __future__ import annotations

import argparse
import base64
import os
import time
from pathlib import Path

import cv2
import numpy as np

from bench.report import machine_label, write_section
from ml.config import ROOT, data_path, load_config
from ml.datasets import ANKARA_LETTERS
from ml.features import hand_features
from ml.inference import Predictor
from ml.landmarks import HandTracker, list_image_folder, tracker_settings
from tests.conftest import Server, webcam_jpeg

HELD = 3  # frames each photo is shown: the window the model reads
PAGE_FPS = 15
SOURCES = ("kaggle", "ayuraj", "ankara", "signademy")
ASPECT = 4 / 3

PAGE_READ = """async ({ clips, settings }) => {
  if (!window.benchTracker) {
    const { PageTracker } = await import("/static/js/tracker.js");
    const blank = Object.assign(document.createElement("canvas"), { width: 480, height: 360 });
    window.benchTracker = await PageTracker.load(blank, settings);
    window.benchCanvas = blank;
  }
  const tracker = window.benchTracker, canvas = window.benchCanvas, out = [];
  let ms = 0;
  for (const clip of clips) {
    tracker.reset();
    const frames = [];
    for (const b64 of clip) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
      [canvas.width, canvas.height] = [bitmap.width, bitmap.height];
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      const started = performance.now();
      frames.push(await tracker.read(canvas));
      ms += performance.now() - started;
    }
    out.push(frames);
  }
  return { frames: out, ms };
}"""


def photos(source: str, per_class: int, config: dict) -> list[tuple[Path, str]]:
    """The first `per_class` photos of each class of a source, with their letter (ankara: the digits read as letters)."""
    folder = data_path(config, source)
    items = list_image_folder(folder)
    if source == "ankara":
        items = [(p, ANKARA_LETTERS[c]) for p, c in items if c in ANKARA_LETTERS]
    items = [(p, c) for p, c in items if c != "nothing"]  # no hand in view: nothing to compare
    by_class: dict[str, list] = {}
    for p, c in items:
        by_class.setdefault(c, []).append((p, c))
    return [item for c in sorted(by_class) for item in by_class[c][:per_class]]


def server_frames(clips: list[list[bytes]], config: dict) -> list[list[dict]]:
    """The server tracker's frames for each clip (its JPEGs in order, the tracker reset before it)."""
    with HandTracker(static=False, **tracker_settings(config["landmarks"])) as tracker:
        out = []
        for clip in clips:
            tracker.reset()
            hands = [tracker.process(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)) for j in clip]
            out.append([{"landmarks": None if h is None else h.landmarks.tolist(), "handedness": h and h.handedness}
                        for h in hands])
        return out


def page_frames(url: str, clips: list[list[bytes]], config: dict, chunk: int = 20) -> tuple[list[list[dict]], float]:
    """The page tracker's frames for each clip (its JPEGs in order, the tracker reset before it), and its frames a
    second."""
    from playwright.sync_api import sync_playwright

    lm = config["landmarks"]
    settings = {"modelComplexity": lm["model_complexity"], "minDetectionConfidence": lm["min_detection_confidence"],
                "minTrackingConfidence": lm["min_tracking_confidence"]}
    out, ms = [], 0.0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        page.goto(url + "/?landmarks=server")  # the app's origin and CSP; no camera here, so the page stays idle
        for i in range(0, len(clips), chunk):
            part = [[base64.b64encode(j).decode() for j in clip] for clip in clips[i:i + chunk]]
            got = page.evaluate(PAGE_READ, {"clips": part, "settings": settings})
            out += got["frames"]
            ms += got["ms"]
        browser.close()
    return out, sum(map(len, clips)) / (ms / 1000)


def video_clips(config: dict) -> list[tuple[list[bytes], str]]:
    """The signademy letter clips as the page sends them: 15 frames a second, 480 wide, JPEG; with their letter."""
    clips = []
    for path in sorted(data_path(config, "signademy").glob("*.mp4")):
        video, frames, i = cv2.VideoCapture(str(path)), [], 0
        step = max(1, round((video.get(cv2.CAP_PROP_FPS) or 30) / PAGE_FPS))
        while (ok := video.read())[0]:
            if i % step == 0:
                image = ok[1]
                h, w = image.shape[:2]
                image = cv2.resize(image, (480, round(h * 480 / w)), interpolation=cv2.INTER_AREA)
                frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            i += 1
        video.release()
        clips.append((frames, path.stem.upper()))
    return clips


def live_letters(frames: list[dict], aspect: float, predictor: Predictor) -> list[str]:
    """The letter read at each frame of a clip as the live Session reads it: a window of the last frames with a hand
    (up to the model's T), started afresh at a frame without one ("nothing")."""
    windows, window = [], []
    for f in frames:
        if not f["landmarks"]:
            window = []
            windows.append(None)
            continue
        window = (window + [hand_features(np.array(f["landmarks"], np.float32), aspect, f["handedness"] == "Right")])
        window = window[-predictor.window:]
        windows.append(np.stack(window))
    futures = [w is not None and predictor.submit(w) for w in windows]
    return ["nothing" if not f else predictor.classes[int(np.argmax(f.result(timeout=60)))] for f in futures]


def compare_videos(page: list, server: list, clips: list, predictor: Predictor) -> dict:
    """Each clip's held second half, read frame by frame through each tracker's landmarks."""
    aspect = 480 / (cv2.imdecode(np.frombuffer(clips[0][0][0], np.uint8), cv2.IMREAD_COLOR).shape[0])
    right = {"page": [], "server": []}
    for p, s, (frames, label) in zip(page, server, clips):
        for name, got in (("page", p), ("server", s)):
            letters = live_letters(got, aspect, predictor)
            right[name] += [x == label for x in letters[len(letters) // 2:]]
    pairs = [(np.array(a["landmarks"]), np.array(b["landmarks"])) for p, s in zip(page, server) for a, b in zip(p, s)
             if a["landmarks"] and b["landmarks"]]
    height = 480 / aspect
    dist = [float(np.linalg.norm((a[:, :2] - b[:, :2]) * [480, height], axis=1).mean()) for a, b in pairs]
    frames = sum(len(p) for p in page)
    return dict(source="signademy (video, live window)", photos=f"{len(clips)} clips, {frames} frames",
                page_found=sum(bool(f["landmarks"]) for p in page for f in p),
                server_found=sum(bool(f["landmarks"]) for s in server for f in s), both=len(pairs),
                same_hand=sum(a["handedness"] == b["handedness"] for p, s in zip(page, server) for a, b in zip(p, s)
                              if a["landmarks"] and b["landmarks"]),
                dist_median=float(np.median(dist)), dist_p95=float(np.percentile(dist, 95)),
                same_letter="-", acc_page=100 * float(np.mean(right["page"])),
                acc_server=100 * float(np.mean(right["server"])))


def live_page_fps(url: str, jpeg: bytes, seconds: float = 20) -> float:
    """The tracker's frames a second as the live page shows it (body data-tracker-fps), a fake camera holding the hand
    of `jpeg` in view: the median of its readings over `seconds` once it has one."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from tests.test_page_e2e import write_y4m

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        camera = Path(tmp) / "camera.y4m"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        write_y4m(camera, [(image[:image.shape[0] // 2 * 2, :image.shape[1] // 2 * 2], 2.0)])  # YUV 4:2:0: even sides
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"])
        page = browser.new_page()
        page.goto(url + "/?landmarks=browser")
        readings, deadline = [], time.monotonic() + 120
        while len(readings) < seconds and time.monotonic() < deadline:
            page.wait_for_timeout(1000)
            fps = page.get_attribute("body", "data-tracker-fps")
            if fps:
                readings.append(float(fps))
        browser.close()
    return float(np.median(readings)) if readings else float("nan")


def letter(frames: list[dict], predictor: Predictor) -> str:
    """The model's letter for a held photo's frames (the hands found, in order), "nothing" when none had a hand."""
    feats = [hand_features(np.array(f["landmarks"], np.float32), ASPECT, f["handedness"] == "Right")
             for f in frames if f["landmarks"]]
    if not feats:
        return "nothing"
    probs = predictor.submit(np.stack(feats)).result(timeout=60)
    return predictor.classes[int(np.argmax(probs))]


def compare(source: str, page: list, server: list, labels: list[str], predictor: Predictor) -> dict:
    last = [(p[-1], s[-1]) for p, s in zip(page, server)]
    both = [(np.array(p["landmarks"]), np.array(s["landmarks"]), p["handedness"] == s["handedness"])
            for p, s in last if p["landmarks"] and s["landmarks"]]
    dist = [float(np.linalg.norm((a[:, :2] - b[:, :2]) * [480, 360], axis=1).mean()) for a, b, _ in both]
    read = {name: [letter(f, predictor) for f in frames] for name, frames in (("page", page), ("server", server))}
    acc = {name: 100 * float(np.mean([r == y for r, y in zip(letters, labels)])) for name, letters in read.items()}
    return dict(source=source, photos=len(labels), page_found=sum(bool(p["landmarks"]) for p, _ in last),
                server_found=sum(bool(s["landmarks"]) for _, s in last), both=len(both),
                same_hand=sum(same for *_, same in both),
                dist_median=float(np.median(dist)) if dist else float("nan"),
                dist_p95=float(np.percentile(dist, 95)) if dist else float("nan"),
                same_letter=sum(a == b for a, b in zip(read["page"], read["server"])),
                acc_page=acc["page"], acc_server=acc["server"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--clip-step", type=int, default=1, help="signademy: every n-th letter clip (1: all 25)")
    parser.add_argument("--section", default="page-tracker", help="the docs/PERFORMANCE.md section to write")
    parser.add_argument("--ankara-per-class", type=int, default=20, help="ankara has 4 classes (O V W F)")
    args = parser.parse_args(argv)
    config = load_config()
    predictor = Predictor(ROOT / config["model"]["checkpoint"], device="cpu")
    server = Server(Path("instance") / "bench-page-tracker", gunicorn=True).start()
    rows, speeds = [], []
    try:
        for source in args.sources:
            if source == "signademy":
                videos = video_clips(config)[::args.clip_step]
                clips = [frames for frames, _ in videos]
            else:
                items = photos(source, args.ankara_per_class if source == "ankara" else args.per_class, config)
                clips = [[webcam_jpeg(p)] * HELD for p, _ in items]
            started = time.perf_counter()
            mine = server_frames(clips, config)
            server_fps = sum(map(len, clips)) / (time.perf_counter() - started)
            page, page_fps = page_frames(server.url, clips, config)
            speeds.append((source, page_fps, server_fps))
            rows.append(compare_videos(page, mine, videos, predictor) if source == "signademy" else
                        compare(source, page, mine, [c for _, c in items], predictor))
            print(rows[-1], f"page {page_fps:.1f} fps, server {server_fps:.1f} fps", flush=True)
        steady_fps = live_page_fps(server.url, clips[0][0])
        print(f"page tracker on the live page, a hand held: {steady_fps:.1f} fps", flush=True)
    finally:
        server.stop()
        predictor.close()
    write_section(args.section, markdown(rows, speeds, steady_fps, args))


def markdown(rows: list[dict], speeds: list, steady_fps: float, args) -> str:
    lines = ["## The page's hand tracker against the server's", "",
             f"Machine: {machine_label()}; measured on a shared 2-core machine (load average "
             f"{os.getloadavg()[0]:.1f} at the end; Chromium renders in software).",
             f"Command: `python -m bench.page_tracker --per-class {args.per_class} "
             f"--ankara-per-class {args.ankara_per_class} --sources {' '.join(args.sources)} "
             f"--clip-step {args.clip_step} --section {args.section}`", "",
             "| source | photos | hands found: page, server | same handedness | landmark distance px (median, p95) "
             "| same letter read | letter accuracy: page, server (points) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['photos']} | {r['page_found']}, {r['server_found']} | {r['same_hand']} of "
                     f"{r['both']} | {r['dist_median']:.2f}, {r['dist_p95']:.2f} | {r['same_letter']} "
                     f"| {r['acc_page']:.1f}, {r['acc_server']:.1f} ({r['acc_page'] - r['acc_server']:+.1f}) |")
    lines += ["", "Tracker speed, frames a second over the same held frames (page: headless Chromium, WASM on the "
                  "CPU; server: MediaPipe in Python): "
              + "; ".join(f"{s}: page {p:.1f}, server {v:.1f}" for s, p, v in speeds)
              + ". The page's tracker as the live "
              f"page shows it (fake camera, one hand held; median over 20 s): **{steady_fps:.1f} fps** (target 15)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
