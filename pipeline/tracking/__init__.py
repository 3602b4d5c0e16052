"""MLflow tracking, one job per module.

- ``store``: where runs are stored (``tracking_uri``), a fail-fast check of the server, experiments,
  runs and their errors, params flattened to MLflow's names.
- ``tags``: the git, objective and data tags of a run, and the data manifests it logs.
- ``images``: the labelled comparison strips a run logs (drawn with PIL).
- ``callback``: ``MLflowCallback``, which logs one training run.

Nothing is re-exported here, so ``pipeline.tracking.store`` loads without the training code or PIL.
"""
