"""docs/PERFORMANCE.md is written by several benchmarks: each owns one marked section and rewrites only it."""
from __future__ import annotations

import os
import platform
import re

from ml.config import ROOT

PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
HEADER = "# Performance\n\nWritten by the benchmarks in `bench/`; each section names the command that wrote it.\n"


def rss_mb(pid: int) -> float:
    """A process's resident memory (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def machine_label() -> str:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between <!-- bench:NAME --> markers."""
    text = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_MD.parent.mkdir(parents=True, exist_ok=True)
    PERFORMANCE_MD.write_text(text)
