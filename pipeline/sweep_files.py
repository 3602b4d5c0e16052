"""File names a sweep writes and the report reads, shared so that neither side imports the other."""

SWEEP_FILE = "sweep.json"  # <models_dir>/sweep.json: the sweep that wrote last (name, id, objectives, with_model)
