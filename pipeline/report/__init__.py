"""The evaluate stage and the report (``evaluate.evaluate_all``).

- ``sweep_outputs``: the sweep's ``models/<objective>/`` as the report reads them;
- ``scoring``: PSNR/SSIM/LPIPS of one image, and an objective's decode time;
- ``metrics_file``: ``results/metrics.json`` (benchmark -> scale -> objective -> metric);
- ``leaderboard`` and ``statement``: ``results/leaderboard.md`` and what its numbers mean;
- ``plots``, ``curves``, ``comparison`` and ``figures``: ``results/plots/``;
- ``run_store``: MLflow links, metric histories and report artifacts;
- ``publish``: writing all of it.
"""
