"""Single-run training: ``loop.fit`` (the loop), ``resume`` (a run's state, new or restored from
``last.pt``), ``checkpoint`` (atomic, weights-only files and rebuilding networks from them),
``callbacks`` (hooks for tracking and tuning), ``validation``, ``ema``, ``schedule``, ``device``
(CUDA/AMP/compile choices), ``distributed`` (data-parallel ranks) and ``rng`` (seeding, saved states)."""
