"""podium: a Kaggle-style image-classification dataset in, a validated model and submission out.

    import podium
    run = podium.train("data/", model={"name": "resnet18"}, train={"epochs": 3})
    run.metrics, run.oof, run.submission_path

The API is imported on first use, so that the command line starts without loading torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"
__all__ = ["Run", "auto", "compare", "config_help", "demo", "ensemble", "estimate_inference", "export", "inspect",
           "load", "make_config", "merge", "models", "pack", "predict", "predict_onnx", "preview", "probe", "report",
           "resume", "runs", "search", "serve", "suspects", "sweep", "train"]


def __getattr__(name: str) -> Any:
    if name == "Run":
        from podium.runs.run import Run

        return Run
    if name in __all__:
        from podium import api

        return getattr(api, name)
    raise AttributeError(f"module 'podium' has no attribute {name!r}")


class _CallsTheApi(types.ModuleType):
    """A subpackage that shares its name with an API function (``podium.runs``, ``podium.models``), callable as that
    function: importing the subpackage sets ``podium.<name>`` to it, which would hide ``podium.runs()`` after the
    first call that imports podium.runs. Its modules stay reachable as attributes (``podium.runs.board``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from podium import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in __all__ and isinstance(value, types.ModuleType) and type(value) is types.ModuleType:
            value.__class__ = _CallsTheApi  # the import system sets the attribute once, when it loads the subpackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
