"""Single-run training: ``loop.fit`` (the loop), ``checkpoint`` (atomic, weights-only files and
rebuilding networks from them), ``callbacks`` (hooks for tracking and tuning), ``validation``,
``ema``, ``schedule``, ``device`` (CUDA/AMP/compile choices) and ``rng`` (seeding, saved states)."""
