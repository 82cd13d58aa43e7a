"""Inference: fold ensembles of checkpoints on any list of images (``ensemble``), and a run folder's predictions
(``run``)."""
