"""``podium serve``: an exported model over HTTP (FastAPI + uvicorn), with an upload page, micro-batching and limits.
Runs on onnxruntime, without torch, once the model is exported."""
