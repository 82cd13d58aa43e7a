"""Prediction with saved models; ``predict.predict_saved`` is the one entry point. Nothing is imported here, so
that ``import podium.inference.onnx`` never loads torch."""
