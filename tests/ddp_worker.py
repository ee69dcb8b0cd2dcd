"""Run by test_train.py under torchrun: a short 2-rank training run on synthetic data; each rank
writes a checksum of every tensor of its supernet, so the test can compare the ranks."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from ofa_edge import get_space
from ofa_edge.train.schedule import get_schedule
from ofa_edge.train.trainer import TrainConfig, TrainData, Trainer, init_distributed
from tests.test_train import synthetic_dataset

out = Path(sys.argv[1])
assert init_distributed(), "expected to run under torchrun with WORLD_SIZE=2"
schedule = get_schedule("quick")
data = TrainData.from_dataset(synthetic_dataset(), schedule, seed=0, flip=True)
trainer = Trainer(TrainConfig(get_space("mbv3-fmnist"), schedule, out / "run", "synthetic", seed=0,
                              validate_every_epoch=False), data)  # fmt: skip
summary = trainer.run()
rank = dist.get_rank()
checksums = {k: float(v.double().sum()) for k, v in trainer.net.state_dict().items()}
first_batch_labels = next(iter(trainer.loader.epoch(0)))[1].tolist()
(out / f"rank{rank}.json").write_text(json.dumps({
    "world_size": dist.get_world_size(), "steps": summary["steps"], "checksums": checksums,
    "shard_labels": first_batch_labels,
}))  # fmt: skip
dist.destroy_process_group()
