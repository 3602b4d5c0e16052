"""The evaluate stage and the report (``evaluate.evaluate_all``).

- ``sweep_outputs``: the sweep's ``models/<objective>/`` as the report reads them;
- ``scoring``: PSNR/SSIM/LPIPS of one image, and an objective's decode time;
- ``metrics_file``: ``results/scores.json`` (benchmark -> scale -> objective -> metric) and its flat
  ``results/metrics.json`` for DVC;
- ``leaderboard`` and ``statement``: ``results/leaderboard.md`` and what its numbers mean;
- ``plots``, ``curves``, ``comparison`` and ``figures``: ``results/plots/`` and ``results/curves.csv``;
- ``run_store``: MLflow links, metric histories, report artifacts and the benchmark metrics of each run;
- ``publish``: writing all of it.
"""
