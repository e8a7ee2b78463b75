"""Measurements built on the network and its edits: vector fields, exact outcomes, steering, channels, statistics.

Data flow, and the module that holds each step::

    maze → the policy on every open cell       vfield.py (vector fields, field differences)
      → absorbing chain of exact outcomes      exact_chain.py (P(cheese), P(top-right), in torch)
      → activations up to a hook, cached       prefix_cache.py (each edit runs only the rest)
      → gradients of P(cheese) per channel     channel_gradients.py (first-order ablation effects)
      → channel scans: rank, then verify       scan.py
    random mazes → reference activations       references.py (mean / resample ablations, patches)
    activations → steering vectors             steering.py (cheese vector, top-right vector, retarget)
      → channels that track the cheese         channels.py → channel_table.py (ranked tables)
    outcomes → intervals and regressions       stats.py (Wilson, Newcombe, bootstrap, regression)
"""
