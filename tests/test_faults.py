"""Faults while writing: a disk that fills up mid-write never leaves a half-written checkpoint or landmark set."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ml.model import CLASSES, SignGRU

# A real short write: the child process may write at most LIMIT bytes per file (RLIMIT_FSIZE), as on a
# nearly full disk; past it write() fails with EFBIG (SIGXFSZ ignored so the error reaches Python).
FULL_DISK_CHILD = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from ml.checkpoint import save_checkpoint
    from ml.model import CLASSES, SignGRU
    import torch
    torch.manual_seed(1)
    model = SignGRU()
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    try:
        save_checkpoint(sys.argv[1], model, classes=CLASSES, window=8)
    except OSError as exc:
        print("write failed:", exc.errno)
        sys.exit(3)
""")


def test_checkpoint_write_on_full_disk_keeps_the_old_file(tmp_path):
    target = tmp_path / "best_model.pth"
    save_checkpoint(target, SignGRU(), classes=CLASSES, window=8)
    before = target.read_bytes()

    done = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(target)], capture_output=True, text=True,
                          cwd=str(__import__("ml.config").config.ROOT))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "write failed" in done.stdout
    assert target.read_bytes() == before  # the old checkpoint is untouched and still loads
    load_checkpoint(target)
    assert [p.name for p in tmp_path.iterdir()] == ["best_model.pth"]  # no temp file left behind


def test_truncated_checkpoint_is_refused_with_a_clear_error(tmp_path):
    good = save_checkpoint(tmp_path / "good.pth", SignGRU(), classes=CLASSES, window=8)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
