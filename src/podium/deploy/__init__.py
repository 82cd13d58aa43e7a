"""Models that leave podium: ``build``/``graph``/``parity``/``writer`` (``podium export``, needs torch) and the light
modules ``runtime`` and ``resize`` (onnxruntime, numpy and OpenCV only: ``podium predict --onnx``, ``podium serve``).

Nothing is imported here, so that ``import podium.deploy.runtime`` never loads torch."""
