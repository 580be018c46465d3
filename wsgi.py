"""Entry point: `python wsgi.py` serves on SIGN2SOUND_HOST:SIGN2SOUND_PORT (config.yaml: 127.0.0.1:5000)."""
from __future__ import annotations

import torch

from app import create_app, socketio
from ml.config import load_config

config = load_config()
torch.set_num_threads(config["model"]["torch_threads"])
app = create_app(config)

if __name__ == "__main__":
    socketio.run(app, host=config["host"], port=int(config["port"]), allow_unsafe_werkzeug=True)
