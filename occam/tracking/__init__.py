"""Training runs the student can look back at: TensorBoard logs, an MLflow record of every ``fit``, and the
two UIs, started next to the notebook and linked through JupyterHub.

- :mod:`~occam.tracking.paths`: where runs live (``runs_dir``, the tracking URI), from :mod:`occam.config`.
- :mod:`~occam.tracking.record`: what a fit records (its parameters, its metrics), pure.
- :mod:`~occam.tracking.mlflow_store` and :mod:`~occam.tracking.recorder`: the MLflow store, imported lazily
  and quietly, and the driver's recorder (a thread) that ``fit`` feeds with the ranks' epoch events.
- :mod:`~occam.tracking.servers`: a web UI as a child process on 127.0.0.1 (readiness, link, clean stop),
  used by :mod:`~occam.tracking.tensorboard` and :mod:`~occam.tracking.mlflow_ui`.

Nothing here imports :mod:`occam.training`: training's ``fit`` uses this package, not the other way round.
"""
