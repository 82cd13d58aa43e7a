"""``serve``: what ``podium serve TARGET`` runs: the model loaded (a run or ensemble folder is exported first, once),
the access rule checked, and uvicorn started on the app (``podium.serving.app.create_app``)."""

from __future__ import annotations

import os
from pathlib import Path

from podium.core.errors import PodiumError
from podium.inference.onnx import OnnxBundle, OnnxModel, open_exported
from podium.runs.bundle import Bundle
from podium.serving.app import Limits, create_app

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "PODIUM_TOKEN"


def resolve_token(host: str, token: str | None) -> str | None:
    """The API token (``--token``, else $PODIUM_TOKEN); required on any address but localhost."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if host not in LOCAL_HOSTS and not token:
        raise PodiumError(f"podium serve --host {host} listens beyond this machine: give --token TOKEN (or set "
                          f"{TOKEN_ENV}); clients then send 'Authorization: Bearer TOKEN'.")
    return token


def load_model(target: str | Path, threads: int = 0) -> OnnxModel | OnnxBundle:
    """An ONNX file, a bundle folder, or a run / ensemble folder's ``export/model.onnx`` or ``export/bundle``
    (exported now, with its parity check, when it has neither)."""
    path = Path(target).expanduser()
    if path.is_file() or Bundle.is_bundle(path):
        return open_exported(path, threads)
    if not path.is_dir():
        raise PodiumError(f"{target} is neither an ONNX file nor a run or ensemble folder.")
    from podium.runs.ensemble import open_folder

    folder = open_folder(path, writer=False)
    for exported in (folder.onnx_path, folder.bundle_path):
        if exported.is_file() or Bundle.is_bundle(exported):
            return open_exported(exported, threads)
    from podium.deploy.writer import export_model

    return open_exported(export_model(folder.path)["path"], threads)


def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          limits: Limits = Limits(), window_ms: float = 5.0) -> None:
    """Serve ``target`` until interrupted."""
    import uvicorn

    token = resolve_token(host, token)
    app = create_app(load_model(target), token, limits, window_ms)
    uvicorn.run(app, host=host, port=port, log_level="warning")
