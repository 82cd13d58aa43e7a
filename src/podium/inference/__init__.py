"""Prediction with saved models: ``predict.predict_saved`` is the one entry point (a run, an ensemble, a Kaggle
hidden test set, an exported ONNX graph); checkpoints' fold averages (``checkpoints``), blends of runs (``blends``),
weighted members (``members``), the torch-free ONNX runtime (``onnx``, ``resize``) and pseudo-label teachers.

Nothing is imported here, so that ``import podium.inference.onnx`` never loads torch."""
