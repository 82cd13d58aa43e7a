"""Run folders and the experiment log."""
