"""Training: a run's data and statistics (``run``), its model and schedule (``recipe``),
callbacks, loss and metrics, the multi-worker loop and the tuner's hypermodel. The ``train``,
``tune``, ``evaluate``, ``compare`` and ``ensemble`` commands drive it."""
