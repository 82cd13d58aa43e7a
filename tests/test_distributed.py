"""Two processes on CPU (gloo) through torchrun, the way ``accelerate launch`` runs podium on several GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import timm
import torch

import datagen


def test_two_process_run_with_head_only_warmup(tmp_path: Path) -> None:
    """The frozen first epoch leaves the backbone without gradients, which DistributedDataParallel only accepts when
    told to look for unused parameters; OOF rows from both processes are gathered once each."""
    data = datagen.csv_single(tmp_path / "data")
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "w.pth")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "podium", "train", str(data), "model.name=test_resnet", "model.pretrained=file",
           f"model.weights_path={tmp_path / 'w.pth'}", "model.img_size=32", "train.epochs=2",
           "finetune.freeze_epochs=1", "train.batch_size=8", "train.num_workers=0", "train.threads=1", "cv.folds=2",
           f"run.root={tmp_path / 'runs'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    oof = pd.read_csv(run / "oof.csv")
    assert len(oof) == 48 and oof["id"].is_unique
    assert (run / "fold0" / "best.pt").is_file() and (run / "fold1" / "best.pt").is_file()
    assert len(pd.read_csv(run / "submission.csv")) == 12
