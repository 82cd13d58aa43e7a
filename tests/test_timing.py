"""``engine.timing.time_steps``: a few real steps of a tiny model give positive per-image seconds."""

from __future__ import annotations

from pathlib import Path

import datagen
from podium.api import make_config
from podium.data.folders.ingest import load_competition
from podium.engine.timing import time_steps


def test_a_few_real_steps_time_training_evaluation_decoding_and_setup(single_dir: Path) -> None:
    cfg = make_config(None, datagen.TINY)
    comp = load_competition(single_dir, cfg.data, check=False)
    paths = comp.train["path"].tolist()[:10]  # fewer than the steps need: repeated
    t = time_steps(cfg, paths, comp.targets[:10], comp.task, len(comp.classes), steps=2)
    assert t.train_s > 0 and t.eval_s > 0 and t.decode_s > 0 and t.setup_s > 0
