"""Prediction: TTA views, fold ensembles from checkpoints, and the prediction commands."""
