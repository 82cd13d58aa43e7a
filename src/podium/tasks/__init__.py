"""What a prediction means: tasks (binary, multiclass, multilabel, ordinal) and the target shapes through which
metrics, submission formats and fold stratifiers declare what they fit, ordinal codings, decision thresholds."""
