"""The network and the edits of its activations: the model, hook points, hooks, interventions.

Data flow, and the module that holds each step::

    observation (64×64×3) → network input       numerics.py (fast or reference layout)
      → IMPALA CNN, every op a named module     model.py (ImpalaPolicy, move_probs)
      → named activations (hook points)         hook_points.py (names, shapes, channel checks)
      → read: ActivationCache                   hooks.py (run_with_cache, activations)
      → edit: interventions at hook points      interventions.py (ZeroAblate, MeanAblate, AddVector,
                                                Clamp, ...); hooks.py (intervene, forward_from)
      → logits, checked finite                  finite.py

Nothing here knows about mazes, rollouts or files: the layer above
(:mod:`mazeinterp.maze`, :mod:`mazeinterp.rollout`, :mod:`mazeinterp.analysis`) feeds it
observations and reads its outputs.
"""
