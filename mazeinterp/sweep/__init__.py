"""Sweeps: a grid of interventions × mazes × seeds, run in shards and merged into one table.

Data flow, and the module that holds each step::

    TOML or SweepConfig → grid of conditions   config.py (SweepConfig, Condition)
      → manifest and shard files on disk       files.py (sweep.json, sealed shards, checks)
      → shards run in processes or on Ray      runner.py (run_sweep); ray_backend.py
      → one shard: interventions on its mazes  shard.py (sampled rollouts); exact.py (exact outcomes)
      → merged rows, CSV and heatmap           output.py

``estimator="sampled"`` runs episodes; ``estimator="exact"`` solves each maze's outcome
chain (:mod:`mazeinterp.analysis.exact_chain`) with the prefix cache.
"""
