"""Train the GRU on landmark sets.

    python -m ml.train --datasets kaggle ayuraj asl_ai bisonhacks signademy --epochs 60 --lr 0.002 --batch-size 256 \
        --out runs/all [--seed 0] [--window 8] [--base CKPT] [--test-groups kaggle] ...

stdout carries ONLY JSON lines (one per epoch, then one "done" line) so that a web page can follow a job;
a progress bar goes to stderr when it is a terminal. Errors: a message on stderr and exit code 2.
Writes OUT/best_model.pth (best validation accuracy), OUT/checkpoint_epoch_XXX.pth every
--checkpoint-every epochs, and OUT/model_card.json.

Validation: --val-groups when given; else the last --val-fraction of every (group, class) in recording order,
so frames of one recording never sit on both sides. --test-groups are kept out of training and validation
entirely and reported at the end (leave-one-signer-out); --test-fraction GROUP:F does the same for a
stratified random fraction of one group (the Kaggle split).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.augment import AugmentConfig, held_windows, training_windows
from ml.checkpoint import CheckpointError, load_checkpoint, resolve_device, save_checkpoint
from ml.config import load_config
from ml.datasets import SOURCES, load_dataset
from ml.features import N_SHAPE
from ml.landmark_set import LandmarkSet
from ml.model import CLASSES, SignGRU, count_parameters
from ml.personal import make_replay


class TrainError(ValueError):
    """Bad options or data: reported on stderr, exit code 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", required=True,
                   help=f"config data names ({', '.join(SOURCES)}) or landmark-set .npz files")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, default=None, help="frames per window T (default 8, or the base's)")
    p.add_argument("--base", help="fine-tune from this checkpoint")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--motion", action="store_true",
                   help="a model that also reads the wrist's path over the window (feature version 2; by default a "
                        "shape-only model, which reads strangers better: docs/EXPERIMENTS.md)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--patience", type=int, default=15, help="epochs without a better validation accuracy")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--val-groups", nargs="*", default=[])
    p.add_argument("--test-groups", nargs="*", default=[])
    p.add_argument("--test-fraction", help="GROUP:F, a stratified random test fraction of one group")
    p.add_argument("--balance", choices=("none", "signer", "signer-class"), default="signer-class",
                   help="draw each epoch's samples so every signer (and class) weighs the same")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--mirror", type=float, default=AugmentConfig.mirror, help="augmentation: mirror probability")
    p.add_argument("--augment", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"other augmentation settings ({', '.join(AugmentConfig.__dataclass_fields__)})")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "checkpoint_every", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.lr <= 0 or not 0 <= args.val_fraction < 1:
        p.error("--lr must be > 0 and --val-fraction in [0, 1)")
    if args.window is not None and args.window < 1:
        p.error("--window must be >= 1")
    try:
        args.augment_settings = {k: float(v) for k, v in (item.split("=", 1) for item in args.augment)}
        AugmentConfig(**args.augment_settings)
    except (ValueError, TypeError):
        p.error(f"--augment takes KEY=NUMBER with KEY among {', '.join(AugmentConfig.__dataclass_fields__)}")
    return args


def load_sets(names: list[str], config: dict) -> LandmarkSet:
    sets = []
    for name in names:
        try:
            data = load_dataset(name, config)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise TrainError(str(exc)) from None
        unknown = sorted(set(data.y) - set(CLASSES))
        if unknown:
            raise TrainError(f"{name}: unknown classes {unknown} (expected {', '.join(CLASSES)})")
        sets.append(data)
    data = LandmarkSet.concat(sets)
    if len(data) == 0:
        raise TrainError(f"no samples in {', '.join(names)}")
    return data


def split(data: LandmarkSet, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, val, test)."""
    n = len(data)
    test = np.isin(data.group, args.test_groups)
    if args.test_fraction:
        group, _, frac = args.test_fraction.rpartition(":")
        rng = np.random.default_rng(args.seed)
        for cls in np.unique(data.y):
            idx = np.flatnonzero((data.group == group) & (data.y == cls))
            test[rng.permutation(idx)[:int(round(float(frac) * len(idx)))]] = True
    if args.val_groups:
        val = np.isin(data.group, args.val_groups) & ~test
    else:
        val = np.zeros(n, bool)
        for key in set(zip(data.group[~test], data.y[~test])):
            idx = np.flatnonzero((data.group == key[0]) & (data.y == key[1]) & ~test)  # recording order
            k = int(math.ceil(args.val_fraction * len(idx))) if len(idx) > 1 else 0
            if k:
                val[idx[-k:]] = True
    train = ~val & ~test
    if not train.any():
        raise TrainError("no training samples left after the validation/test split")
    return train, val, test


def epoch_weights(groups: np.ndarray, labels: np.ndarray, balance: str) -> np.ndarray | None:
    """Per-sample draw probabilities that give every signer (balance "signer") or every signer's every class
    ("signer-class") the same weight; None draws each sample once. One prolific signer (asl_ai has 10,508
    webcam frames, ayuraj's people ~620 photos each) otherwise teaches the model mostly their own hand."""
    if balance == "none":
        return None
    keys = groups if balance == "signer" else np.char.add(np.char.add(groups.astype(str), "|"), labels.astype(str))
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights / weights.sum()


def warmup_cosine(total_steps: int, warmup: float = 0.1, floor: float = 0.01):
    """LR factor per step: a linear warm-up over the first `warmup` of the steps, then a cosine decay to
    `floor` (any number of steps, even one)."""
    warm = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def evaluate_windows(model: nn.Module, windows: np.ndarray, labels: np.ndarray, device: torch.device,
                     batch: int = 1024) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, predicted class indices) on fixed windows."""
    model.eval()
    losses, preds = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), batch):
            x = torch.as_tensor(windows[i:i + batch], device=device)
            y = torch.as_tensor(labels[i:i + batch], device=device)
            logits = model(x).float()
            losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
            preds.append(logits.argmax(-1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    if not len(labels):
        return float("nan"), float("nan"), pred
    return sum(losses) / len(labels), float((pred == labels).mean()), pred


def run(args: argparse.Namespace, emit=print) -> dict:
    """Train; emit(json_line) per epoch. Returns the final metrics."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    device = resolve_device(args.device)
    config = load_config()
    data = load_sets(args.datasets, config)
    train_m, val_m, test_m = split(data, args)
    features = data.features()
    labels = np.array([CLASSES.index(c) for c in data.y])

    if args.base:
        try:
            model, base_meta = load_checkpoint(args.base, device)
        except CheckpointError as exc:
            raise TrainError(str(exc)) from None
        if base_meta["classes"] != CLASSES:
            raise TrainError(f"{args.base}: classes {base_meta['classes']} are not {CLASSES}")
        window = args.window or base_meta["window"]
    else:
        inputs = dict(motion=True) if args.motion else dict(n_features=N_SHAPE)
        model = SignGRU(hidden=args.hidden, layers=args.layers, dropout=args.dropout, **inputs).to(device)
        window = args.window or 8
    aug = None if args.no_augment else AugmentConfig(**{"mirror": args.mirror, **args.augment_settings})
    x_train, y_train = features[train_m], labels[train_m]
    draw = epoch_weights(data.group[train_m], y_train, args.balance)
    val_windows, y_val = held_windows(features[val_m], window), labels[val_m]

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(args.epochs * math.ceil(len(x_train) / args.batch_size)))
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_config = {k: v for k, v in vars(args).items()} | {"window": window, "augment": aug and aug.as_dict()}
    best = {"val_acc": -1.0}
    best_path = out / "best_model.pth"
    stale, history = 0, []
    bar = sys.stderr.isatty()

    for epoch in range(1, args.epochs + 1):
        started = time.monotonic()
        model.train()
        picked = rng.choice(len(x_train), len(x_train), p=draw) if draw is not None else slice(None)
        windows = training_windows(x_train[picked], y_train[picked], window, rng, aug)
        y_epoch = y_train[picked]
        order = rng.permutation(len(windows))
        total_loss, correct = 0.0, 0
        n_batches = math.ceil(len(order) / args.batch_size)
        for b in range(n_batches):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            x = torch.as_tensor(windows[idx], device=device)
            y = torch.as_tensor(y_epoch[idx], device=device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            if bar:
                print(f"\repoch {epoch}/{args.epochs} [{'#' * (30 * (b + 1) // n_batches):<30}] "
                      f"loss {total_loss / min(len(order), (b + 1) * args.batch_size):.4f}",
                      end="", file=sys.stderr, flush=True)
        val_loss, val_acc, _ = evaluate_windows(model, val_windows, y_val, device)
        if not len(y_val):  # no validation data: judge on the training samples
            val_loss, val_acc, _ = evaluate_windows(model, held_windows(x_train, window), y_train, device)
        record = {"event": "epoch", "epoch": epoch, "epochs": args.epochs,
                  "train_loss": round(total_loss / len(order), 5), "val_loss": round(val_loss, 5),
                  "train_acc": round(correct / len(order), 5), "val_acc": round(val_acc, 5),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - started, 3)}
        history.append(record)
        if bar:
            print(f"\repoch {epoch}/{args.epochs} loss {record['train_loss']:.4f} val_acc {val_acc:.4f}"
                  f"{' ' * 20}", file=sys.stderr)
        emit(json.dumps(record))
        extra = dict(train_config=train_config, epoch=epoch)
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch}
            save_checkpoint(best_path, model, classes=CLASSES, window=window, metrics=dict(best), **extra)
            stale = 0
        else:
            stale += 1
        if epoch % args.checkpoint_every == 0:
            save_checkpoint(out / f"checkpoint_epoch_{epoch:03d}.pth", model, classes=CLASSES, window=window,
                            metrics={"val_acc": val_acc, "val_loss": val_loss}, **extra)
        if stale >= args.patience:
            break

    model, _ = load_checkpoint(best_path, device)
    metrics = {**best, "epochs_run": len(history), "parameters": count_parameters(model),
               "train_samples": int(train_m.sum()), "val_samples": int(val_m.sum()),
               "test_samples": int(test_m.sum())}
    if test_m.any():
        _, test_acc, pred = evaluate_windows(model, held_windows(features[test_m], window), labels[test_m], device)
        metrics["test_acc"] = test_acc
        # Classes no training signer has (Kaggle's del and space when Kaggle is held out) cannot be learnt:
        # the accuracy over the classes the model was trained on is reported beside the plain one.
        seen = np.isin(labels[test_m], np.unique(y_train))
        metrics["test_acc_seen_classes"] = float((pred[seen] == labels[test_m][seen]).mean()) if seen.any() else None
        groups = data.group[test_m]
        metrics["test_per_group"] = {str(g): float((pred[groups == g] == labels[test_m][groups == g]).mean())
                                     for g in np.unique(groups)}
    # A few training samples per class travel with the model: calibration replays them (ml.personal).
    save_checkpoint(best_path, model, classes=CLASSES, window=window, metrics=metrics,
                    train_config=train_config, epoch=best["epoch"],
                    **make_replay(features[train_m], labels[train_m], data.group[train_m], seed=args.seed))
    card = {"checkpoint": str(best_path), "command": "python -m ml.train " + " ".join(sys.argv[1:]),
            "data": _describe(data, train_m, val_m, test_m), "window": window,
            "windows": "each still sample held for T frames with per-frame tracking jitter and a slow "
                       "orientation drift; per-sample camera angle, aspect, finger-length and shape augmentation; "
                       "some windows start with frames of another letter (a transition)",
            "model_config": model.config, "train_config": train_config, "metrics": metrics, "history": history}
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    return metrics


def _describe(data: LandmarkSet, train_m, val_m, test_m) -> dict:
    groups = {}
    for g in np.unique(data.group):
        m = data.group == g
        groups[str(g)] = {"train": int((m & train_m).sum()), "val": int((m & val_m).sum()),
                          "test": int((m & test_m).sum()), "classes": int(len(np.unique(data.y[m])))}
    return {"samples": len(data), "groups": groups}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        metrics = run(args, emit=lambda line: print(line, flush=True))
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"event": "done", "checkpoint": str(Path(args.out) / "best_model.pth"), "metrics": metrics}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
