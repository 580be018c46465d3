"""What practice changes in an adaptation's cost: many more samples under one key (calibration's 20-odd frames of a
class become up to `calibration.max_samples_per_class` from many takes). The adaptation subprocess the server runs
(`python -m ml.personal`, niced as the server nices it) is timed on a calibration's worth of frames and on a
practised user's full store, alternating, so the machine's other load falls on both alike.

    python -m bench.practice                  # ~2 min on 2 cores, writes docs/PERFORMANCE.md (practice)
    python -m bench.practice --rounds 1 --no-write

Real landmarks: asl_ai's one person (consecutive frames of one recording per letter), cut into takes of 8 frames
(a practised letter's hold) or 20 (a calibration capture). Target: <= 15 s each, the subprocess's start included.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import machine_label, write_section
from ml.config import ROOT, data_path, load_config
from ml.personal import Samples

SIZES = {"calibration (26 classes x 20 frames, 1 take each)": (20, 20),
         "practised, full store (26 classes x 60 frames, takes of 8)": (60, 8)}


def samples(per_class: int, take_len: int) -> Samples:
    data = np.load(data_path(load_config(), "asl_ai"))
    rows, takes = [], []
    for c, letter in enumerate(sorted(set(data["y"]))):
        index = np.flatnonzero(data["y"] == letter)[:per_class]
        rows += list(index)
        takes += [c * 1000 + k // take_len for k in range(len(index))]
    rows = np.array(rows)
    return Samples(data["X"][rows], np.full(len(rows), 4 / 3), np.zeros(len(rows), bool), data["y"][rows],
                   np.array(takes))


def adapt_once(folder: Path, nice: int) -> tuple[float, dict]:
    checkpoint = ROOT / load_config()["model"]["checkpoint"]
    started = time.monotonic()
    out = subprocess.run(["nice", "-n", str(nice), sys.executable, "-m", "ml.personal", "--checkpoint", str(checkpoint),
                          "--samples", str(folder / "samples.npz"), "--out", str(folder / "model.pth")],
                         cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}).stdout
    seconds = time.monotonic() - started
    done = [json.loads(line)["done"] for line in out.splitlines() if line.startswith('{"done"')]
    return seconds, done[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    nice = int(load_config()["calibration"]["nice"])
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name in SIZES}
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for i, (name, (per_class, take_len)) in enumerate(SIZES.items()):
            folders[name] = Path(tmp) / str(i)
            folders[name].mkdir()
            made = samples(per_class, take_len)
            counts[name] = len(made)
            made.save(folders[name] / "samples.npz")
        for _ in range(args.rounds):
            for name in SIZES:
                seconds, done = adapt_once(folders[name], nice)
                times[name].append(seconds)
                print(f"{name}: {seconds:.1f} s (training {done['seconds']} s, {done['samples']} frames)", flush=True)
    load_after = os.getloadavg()[0]
    lines = [f"Machine: {machine_label()}; 1-minute load average {load_before:.1f} at the start, {load_after:.1f} "
             f"at the end. Adaptation niceness: {nice}.", "Command: `python -m bench.practice`", "",
             "| samples under the key | frames | median s (subprocess start included) | runs |", "|---|---|---|---|"]
    for name, runs in times.items():
        lines.append(f"| {name} | {counts[name]} | {statistics.median(runs):.1f} | "
                     f"{', '.join(f'{r:.1f}' for r in runs)} |")
    ratio = statistics.median(times[list(SIZES)[1]]) / statistics.median(times[list(SIZES)[0]])
    lines += ["", f"A practised user's full store costs **{ratio:.2f} x** a calibration's adaptation (target: each "
                  "<= 15 s; ml.personal.adapt's max_seconds bounds the training either way)."]
    if max(load_before, load_after) > 2:
        lines += ["", "Measured on a busy shared 2-core machine (load above its 2 cores): compare the two rows, not "
                      "the seconds with the target; the calibration section's idle run is the figure of record."]
    text = "## Practice (adaptation on a practised user's samples)\n\n" + "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("practice", text)


if __name__ == "__main__":
    main()
