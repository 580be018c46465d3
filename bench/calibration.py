"""Calibration's costs on a real server: adaptation time, bystanders while one client adapts, personal-model batching.

    python -m bench.calibration                      # ~4 min on 2 cores, writes docs/PERFORMANCE.md (calibration)
    python -m bench.calibration --seconds 5 --rounds 1 --no-write   # a quick look
    python -m bench.calibration --batching           # step 3 alone, printed (seconds)

1. Adaptation: one client calibrates real Kaggle photos (5 classes x 12 frames) and adapts through the protocol,
   `--adaptations` times on an otherwise idle server: the `adapted` event's seconds (subprocess start included).
2. Side by side, in alternating rounds (so the machine's other load falls on every phase alike):
   - idle: 8 clients stream at 15 fps with the shared model;
   - adapting: the same, while one more client adapts back to back all phase long;
   - personal: 8 clients stream at 15 fps, each with its own personal model. The models are copies of the one
     adapted in step 1 stored under 8 keys: each is loaded separately, so the Predictor runs 8 forward passes a
     batch exactly as for 8 different users (the weights' values do not change the work).
   Targets: adapting p95 <= 1.5 x idle p95; personal p95 <= 50 ms.
3. Batching, in-process: 8 windows read by 8 personal models as 8 passes (one per model), as one stacked pass
   (ml.model.stacked_forward, what the Predictor runs; its weights stacked anew, and cached as the Predictor keeps
   them for the next wake-up with the same models), and by one model as one batch (the floor), interleaved.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import socketio

from app.live.personal import key_hash, new_key
from bench import load_clients
from bench.load import frame_fields, webcam_frames
from bench.report import machine_label, write_section
from ml.checkpoint import load_checkpoint
from ml.config import load_config
from ml.features import N_FEATURES
from ml.model import stack_weights, stacked_forward
from ml.personal import with_motion
from tests.conftest import Server, kaggle_photos, webcam_jpeg

CLIENTS, FPS = 8, 15
CALIBRATION = {label: 12 for label in "VWLYA"}
ENV = {"SIGN2SOUND_CALIBRATION_ADAPTATIONS_PER_KEY_PER_HOUR": "1000",
       "SIGN2SOUND_CALIBRATION_ADAPTATIONS_PER_CLIENT_PER_HOUR": "1000"}


class Calibrator:
    """A client that records calibration frames once, then adapts on demand."""

    def __init__(self, url: str):
        self.sio = socketio.Client(reconnection=False)
        self.adapted: list[dict] = []
        self.errors: list[dict] = []
        self.done = threading.Event()
        self.sio.on("adapted", lambda r: (self.adapted.append(r), self.done.set()))
        self.sio.on("error", lambda e: (self.errors.append(e), self.done.set()) if e.get("seq") is None else None)
        self.sio.connect(url, transports=["websocket"])
        for label, count in CALIBRATION.items():
            self.sio.call("calibrate", {"label": label})
            for photo in kaggle_photos(label, count):
                self.sio.emit("frame", {"seq": 0, "image": webcam_jpeg(photo)})
                time.sleep(1 / 20)
        time.sleep(1.0)  # the last frames are answered
        self.sio.call("calibrate", {"label": None})

    def adapt(self, timeout: float = 300) -> dict:
        self.done.clear()
        self.sio.call("adapt")
        if not self.done.wait(timeout) or not self.adapted:
            raise RuntimeError(f"adaptation failed: {self.errors[-1:] or 'timed out'}")
        return self.adapted[-1]

    def adapt_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.adapt()

    def close(self) -> None:
        self.sio.disconnect()


def stream(url: str, frames: list[dict], seconds: float, keys: list[str] | None = None) -> dict:
    """CLIENTS stream at FPS (bench.load_clients), each with its personal key when `keys` are given."""
    clients, _ = load_clients.stream(url, CLIENTS, seconds, FPS, frames,
                                     auths=[{"personal_key": k} for k in keys] if keys else None)
    rtts = np.array([r for c in clients for r in c.rtts])
    return {"answered": len(rtts), "p50_ms": float(np.percentile(rtts, 50)), "p95_ms": float(np.percentile(rtts, 95)),
            "errors": sum(c.errors for c in clients), "models": sorted(set().union(*(c.models for c in clients)))}


def clone_personal(instance: Path, key: str, count: int) -> list[str]:
    """`count` keys whose entries are copies of `key`'s (see the module docstring)."""
    folder = instance / "personal"
    keys = [new_key() for _ in range(count)]
    for k in keys:
        shutil.copytree(folder / key_hash(key), folder / key_hash(k))
    return keys


def run(seconds: float, rounds: int, adaptations: int) -> dict:
    load_before = os.getloadavg()[0]
    frames = frame_fields("image", webcam_frames())
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "instance", ENV).start()
        try:
            calibrator = Calibrator(server.url)
            adapt_runs = [calibrator.adapt() for _ in range(adaptations)]
            keys = clone_personal(server.instance_dir, adapt_runs[-1]["key"], CLIENTS)
            phases: dict[str, list[dict]] = {"idle": [], "adapting": [], "personal": []}
            adapting_runs: list[dict] = []
            for _ in range(rounds):
                phases["idle"].append(stream(server.url, frames, seconds))
                stop = threading.Event()
                before = len(calibrator.adapted)
                worker = threading.Thread(target=calibrator.adapt_until, args=(stop,))
                worker.start()
                time.sleep(2.0)  # the adaptation's subprocess is running when the streams start
                phases["adapting"].append(stream(server.url, frames, seconds))
                stop.set()
                worker.join()
                adapting_runs += calibrator.adapted[before:]
                phases["personal"].append(stream(server.url, frames, seconds, keys))
                assert phases["personal"][-1]["models"] == ["personal"], phases["personal"][-1]
            calibrator.close()
        finally:
            server.stop()
    return {"adaptation_s": [r["seconds"] for r in adapt_runs],
            "adaptation_under_load_s": [r["seconds"] for r in adapting_runs],
            "before_after": [(r["before"], r["after"]) for r in adapt_runs], "phases": phases,
            "seconds": seconds, "rounds": rounds, "load": (round(load_before, 1), round(os.getloadavg()[0], 1)),
            "nice": load_config()["calibration"]["nice"]}


def batching(repeats: int = 300) -> dict:
    """Median ms of each way to read CLIENTS windows by CLIENTS personal models (step 3 of the docstring)."""
    import torch

    shared, meta = load_checkpoint(Path(__file__).parents[1] / "checkpoints" / "best_model.pth")
    torch.manual_seed(0)
    models = []
    for _ in range(CLIENTS):  # personal models as ml.personal makes them, each with its own weights
        model = with_motion(shared).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        models.append(model)
    x = torch.randn(CLIENTS, meta["window"], N_FEATURES)
    weights = stack_weights(models)
    ways = {"per_model": lambda: [m(x[i:i + 1]) for i, m in enumerate(models)],
            "stacked": lambda: stacked_forward(models[0], stack_weights(models), x),
            "stacked_cached": lambda: stacked_forward(models[0], weights, x),
            "one_model": lambda: models[0](x)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: round(statistics.median(t), 2) for name, t in times.items()} | {
        "threads": torch.get_num_threads(), "repeats": repeats, "load": round(os.getloadavg()[0], 1)}


def batching_line(b: dict) -> str:
    return (f"Batching ({CLIENTS} windows of {CLIENTS} personal models, in-process, {b['threads']} torch threads, "
            f"median of {b['repeats']} interleaved repeats, load average {b['load']}): {CLIENTS} passes, one per model "
            f"**{b['per_model']} ms**; one stacked pass (ml.model.stacked_forward, what the Predictor runs) "
            f"**{b['stacked']} ms** ({b['per_model'] / b['stacked']:.1f} x faster), with its stacked weights cached "
            f"from an earlier wake-up **{b['stacked_cached']} ms** ({b['per_model'] / b['stacked_cached']:.1f} x); "
            f"one model's batch of {CLIENTS} (the floor) {b['one_model']} ms.")


def summary(phase: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in phase), 1) for k in ("p50_ms", "p95_ms")} | {
        "answered": sum(r["answered"] for r in phase), "errors": sum(r["errors"] for r in phase)}


def markdown(result: dict, command: str) -> str:
    s = {name: summary(p) for name, p in result["phases"].items()}
    ratio = s["adapting"]["p95_ms"] / s["idle"]["p95_ms"]
    adapt = result["adaptation_s"]
    under = result["adaptation_under_load_s"]
    lines = [
        "## Calibration (personal models)", "",
        f"Machine: {machine_label()}; shared with other engineers' work while measured, so the phases alternate in "
        f"{result['rounds']} rounds of {result['seconds']:g} s and each figure is the median of its rounds "
        f"(1-minute load average {result['load'][0]} at the start, {result['load'][1]} at the end; 2 would be "
        f"this benchmark alone). Adaptation niceness: {result['nice']}.",
        f"Command: `{command}`", "",
        f"Adaptation (the page's `adapt` -> `adapted`, niced subprocess start included, {sum(CALIBRATION.values())} "
        f"frames of {len(CALIBRATION)} classes, idle server): median **{statistics.median(adapt):.1f} s** "
        f"(runs: {', '.join(f'{x:.1f}' for x in adapt)}; target <= 15 s). While 8 clients stream at 15 fps: "
        f"{', '.join(f'{x:.1f}' for x in under) or 'none finished'} s.", "",
        f"| {CLIENTS} clients at {FPS} fps | p50 ms | p95 ms | frames answered | errors |", "|---|---|---|---|---|"]
    names = {"idle": "shared model, no adaptation", "adapting": "shared model, one more client adapting",
             "personal": f"{CLIENTS} personal models, one each"}
    for name, row in s.items():
        lines.append(f"| {names[name]} | {row['p50_ms']} | {row['p95_ms']} | {row['answered']} | {row['errors']} |")
    lines += ["", f"Bystanders' p95 while one client adapts: **{ratio:.2f} x** idle (target <= 1.5 x). "
                  f"{CLIENTS} personal models: p95 **{s['personal']['p95_ms']} ms** (target <= 50 ms).", "",
              batching_line(result["batching"])]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--adaptations", type=int, default=3, help="timed adaptations on the idle server")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--batching", action="store_true", help="only step 3, printed")
    args = parser.parse_args(argv)
    if args.batching:
        print(batching_line(batching()))
        return
    result = run(args.seconds, args.rounds, args.adaptations) | {"batching": batching()}
    command = "python -m bench.calibration" + (f" --seconds {args.seconds:g}" if args.seconds != 20 else "") + (
        f" --rounds {args.rounds}" if args.rounds != 2 else "")
    text = markdown(result, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.no_write:
        write_section("calibration", text)


if __name__ == "__main__":
    main()
