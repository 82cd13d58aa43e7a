"""podium: a Kaggle-style image-classification dataset in, a validated model and submission out.

    import podium
    run = podium.train("data/", model={"name": "resnet18"}, train={"epochs": 3})
    run.metrics, run.oof, run.submission_path

The API is imported on first use, so that the command line starts without loading torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Run", "compare", "config_help", "demo", "ensemble", "export", "inspect", "load", "make_config", "merge",
           "models", "pack", "predict", "predict_onnx", "preview", "probe", "report", "resume", "runs", "search",
           "serve", "sweep", "train"]


def __getattr__(name: str) -> Any:
    if name == "Run":
        from podium.runs.run import Run

        return Run
    if name in __all__:
        from podium import api

        return getattr(api, name)
    raise AttributeError(f"module 'podium' has no attribute {name!r}")
