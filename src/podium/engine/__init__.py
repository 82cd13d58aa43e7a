"""The training engine: plain functions for the loop (train_one_epoch, predict_logits, evaluate) and their setup."""
