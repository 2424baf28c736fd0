"""Run under ``torchrun --max-restarts 1``: rank 1 dies hard in epoch 3 of the first attempt.

torchrun restarts the whole group; the restarted ranks call ``train`` again with the same
settings and the engine resumes the run from its last checkpoint (TORCHELASTIC_RESTART_COUNT
> 0). Without DIE the same script is the uninterrupted reference. argv: OUT_DIR EPOCHS [DIE]
"""

import math
import os
import sys

import torch

from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.data.prepare import prepare_dataset
from adaptau_cli.engine.trainer import train
from adaptau_cli.models import build_model

out, epochs, die = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
cfg = TrainConfig(epochs=epochs, batch_size=256, num_negatives=64, lr=0.01, warmup_epochs=1, threads=1,
                  device="cpu", ks=(10, 20))
data_cfg = PreprocessConfig(dataset="synthetic-tiny")
dataset = prepare_dataset(data_cfg)
steps_per_epoch = math.ceil(len(dataset.train) / cfg.batch_size)


class Crashing(torch.nn.Module):
    """The built-in MF, but rank 1 of the first attempt exits (as a crashed worker) in epoch 3."""

    def __init__(self, crash_after: int | None):
        super().__init__()
        self.inner = build_model("mf", dataset.n_users, dataset.n_items, cfg.dim, cfg.layers, cfg.dropout)
        self.crash_after, self.calls = crash_after, 0

    def forward(self):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            os._exit(17)
        return self.inner()

    def raw_tables(self):
        return self.inner.raw_tables()


torch.manual_seed(cfg.seed)            # a custom model's initialization is its owner's to seed
first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
crash = die and first_attempt and os.environ.get("RANK") == "1"
train(cfg, data_cfg, dataset, out, model=Crashing(2 * steps_per_epoch + 3 if crash else None))
