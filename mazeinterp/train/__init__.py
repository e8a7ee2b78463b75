"""Training maze agents: PPO as published, and behaviour cloning from the BFS oracle on a CPU.

Data flow, and the module that holds each step::

    fresh mazes → oracle moves at every cell   oracle.py (BFS to the cheese)
      → labelled chunks (DAgger optional)      imitation_data.py; imitation_config.py (settings)
      → behaviour cloning                      imitate.py (+ field_head.py: an auxiliary target)
    procgen envs → PPO updates                 ppo.py (one readable module)
      → checkpoints in our format              common.py (logs, resume states, argument parsing)
    a trained policy → a wider one             widen.py (same function, more channels)
"""
