"""Batched rollouts of a maze policy: an outcome per maze, summaries with intervals, paired comparisons.

Data flow, and the module that holds each step::

    checkpoint → policy                       mazeinterp.checkpoints.registry, mazeinterp.core.model; policies.py
    level seeds → start states (+ cheese)     sources.py
    states → envs → observations              runner.py (mazeinterp.maze.env, mazeinterp.maze.observations)
      → policy with interventions → actions   runner.py (mazeinterp.core.hooks; vectors.py: per-maze edits)
      → envs → outcomes                       runner.py (rules: mazeinterp.maze.outcomes)
      → episodes → summaries with intervals   results.py (mazeinterp.analysis.stats)
      → paired differences                    compare.py
      → tables and plots                      mazeinterp.runtime.outputs, mazeinterp.viz.plots

The central behavioural question of the goal-misgeneralization maze agent is
how often it reaches the cheese, and how often it goes to the top-right corner
instead -- with and without our edits. :func:`run_rollouts` answers it for many
mazes at once::

    from mazeinterp.rollout import RolloutConfig, run_rollouts, compare
    result = run_rollouts(policy, range(200), config=RolloutConfig(seed=0))
    print(result)                                   # counts, P(outcome), Wilson 95% CIs
    print(result.summary(decision_square_only=True))
    comparison = compare(policy, range(200), (), [ZeroAblate(hook, channels=(7,))])
    print(comparison)                               # paired difference in P(cheese)

Modules
-------
* :mod:`~mazeinterp.rollout.config` -- :class:`RolloutConfig` (how a rollout
  runs) and :data:`TEST_SEED_START`.
* :mod:`~mazeinterp.rollout.policies` -- :class:`Policy`,
  :class:`ScriptedPolicy`, :class:`ShortestPathPolicy`, :class:`NoopPolicy`,
  :func:`move_logits`.
* :mod:`~mazeinterp.rollout.vectors` -- :class:`EpisodeVectors`: each maze its
  own steering vector.
* :mod:`~mazeinterp.rollout.sources` -- mazes from level seeds or states
  (:func:`load_mazes`) and cheese placement (:func:`place_cheese`).
* :mod:`~mazeinterp.rollout.runner` -- :func:`run_rollouts`, the batched loop,
  and :class:`RolloutInterrupted`.
* :mod:`~mazeinterp.rollout.results` -- :class:`Episode`,
  :class:`RolloutResult`, :class:`OutcomeSummary`; what the outcomes mean.
* :mod:`~mazeinterp.rollout.compare` -- :func:`compare`,
  :class:`Comparison`, :func:`pairing_mismatch`.
* :mod:`~mazeinterp.rollout.resume` -- keep an interrupted run's episodes and
  finish it later to the same result; :mod:`~mazeinterp.rollout.episode_schema`
  checks each stored episode before it is trusted.

The outcome, region and trap rules themselves are maze-level and live in
:mod:`mazeinterp.maze.outcomes` (:data:`OUTCOMES`, :data:`EVENTS` and
:func:`top_right_counts` are re-exported here).
"""

from __future__ import annotations

from mazeinterp.maze.moves import NOOP_ACTION
from mazeinterp.maze.outcomes import EVENTS, OUTCOMES, top_right_counts
from mazeinterp.rollout.compare import Comparison, compare, pairing_mismatch
from mazeinterp.rollout.config import TEST_SEED_START, RolloutConfig
from mazeinterp.rollout.policies import NoopPolicy, Policy, ScriptedPolicy, ShortestPathPolicy, move_logits
from mazeinterp.rollout.results import Episode, OutcomeSummary, RolloutResult
from mazeinterp.rollout.resume import (
    RESUME_FILE,
    ResumeError,
    ResumeKey,
    episode_from_dict,
    episode_to_dict,
    finish,
    load_partial,
    merge,
    remaining,
    save_partial,
    sigterm_as_interrupt,
)
from mazeinterp.rollout.runner import RolloutInterrupted, run_rollouts
from mazeinterp.rollout.sources import load_mazes, place_cheese
from mazeinterp.rollout.vectors import EpisodeVectors

__all__ = [
    "EVENTS",
    "OUTCOMES",
    "TEST_SEED_START",
    "Comparison",
    "Episode",
    "EpisodeVectors",
    "NoopPolicy",
    "OutcomeSummary",
    "Policy",
    "RolloutConfig",
    "RolloutInterrupted",
    "RolloutResult",
    "ScriptedPolicy",
    "ShortestPathPolicy",
    "compare",
    "load_mazes",
    "move_logits",
    "pairing_mismatch",
    "place_cheese",
    "run_rollouts",
    "top_right_counts",
]
# Also importable from here, as before the split: NOOP_ACTION and the names of
# mazeinterp.rollout.resume (RESUME_FILE, ResumeError, merge, ...); their home
# modules are where to look them up.
