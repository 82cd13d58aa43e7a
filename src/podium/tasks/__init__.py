"""What a prediction means: tasks (binary, multiclass, multilabel, ordinal), ordinal codings, decision thresholds,
metrics and submission formats."""
