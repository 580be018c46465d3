"""The one configuration: config.yaml, overridden by SIGN2SOUND_* environment variables."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "config.yaml"
ENV_PREFIX = "SIGN2SOUND_"


def _override(config: dict, env: dict, prefix: str) -> None:
    for key, value in config.items():
        name = f"{prefix}{key}".upper()
        if isinstance(value, dict):
            _override(value, env, name + "_")
        elif name in env:
            config[key] = yaml.safe_load(env[name]) if env[name] != "" else None


def load_config(path: str | os.PathLike | None = None, env: dict | None = None, **overrides) -> dict:
    """Read config.yaml (or `path`), apply SIGN2SOUND_* env overrides, then keyword overrides
    (nested dicts merge). Relative paths in the result stay relative; resolve them with `project_path`."""
    with open(path or os.environ.get(ENV_PREFIX + "CONFIG", DEFAULT_PATH)) as f:
        config = yaml.safe_load(f) or {}
    _override(config, os.environ if env is None else env, ENV_PREFIX)
    _merge(config, copy.deepcopy(overrides))
    return config


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def project_path(path: str | os.PathLike) -> Path:
    """A config path: absolute as is, relative to the project root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def data_path(config: dict, name: str) -> Path:
    """Where data set `name` (a key of config['data']) lives."""
    return project_path(config["data"]["root"]) / config["data"][name]
