"""Hyperparameter sweeps on Ray Tune, tracked in MLflow: ``sweep.run_sweep`` is the sweep stage.

``space`` (search space -> Tune/Optuna, trial params), ``trial`` (the Tune function), ``ddp``
(data-parallel trials with Ray Train), ``cluster`` (joining or starting Ray, storage),
``parent_run`` (the sweep's MLflow run), ``results`` (trial records, best configurations) and
``outputs`` (trials.csv, best.yaml, models/ for DVC).
"""
