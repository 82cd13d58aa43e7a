import numpy as np

from podium.tasks import TASKS, get_task


def test_probabilities() -> None:
    logits = np.array([[2.0, 0.0, -1.0]])
    p = get_task("multiclass").probabilities(logits)
    assert np.allclose(p.sum(1), 1) and p.argmax() == 0
    q = get_task("multilabel").probabilities(np.array([[0.0, 10.0]]))
    assert np.allclose(q, [[0.5, 1 / (1 + np.exp(-10))]])


def test_each_task_names_registered_metrics() -> None:
    from podium.metrics import METRICS

    for name in TASKS:
        task = get_task(name)
        assert task.primary in task.metrics and all(m in METRICS for m in task.metrics)
