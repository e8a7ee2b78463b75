"""Maze geometry, procgen maze states, the batched maze environment and its observations.

Data flow, and the module that holds each step::

    level seed or bytes → MazeState            state.py (parse, serialize); state_rules.py (checks)
      → grid of open cells, cheese, mouse      grid.py (paths, decision square, distances)
      → batched procgen envs                   env.py (MazeEnv); gym_env.py (Gymnasium)
      → observations → network input           observations.py; pixels.py (cells ↔ pixels)
      → moves and outcomes                     moves.py; outcomes.py (cheese, top-right, traps)

Cell convention (the only one in mazeinterp)
--------------------------------------------
A *cell* is a ``(row, col)`` pair of ints indexing the **inner maze** (the
``n × n`` maze without its padding walls), with ``row 0`` the **top** row and
``col 0`` the left column -- the same orientation as the 64×64 observation and
every activation map. So the mouse starts at ``(n - 1, 0)`` (bottom-left) and
the top-right cell is ``(0, n - 1)``. Grids handed around as numpy arrays use
the same orientation: ``grid[row, col]``.

procgen stores its world grid with row 0 at the *bottom*; that flip happens in
exactly one place, :mod:`mazeinterp.maze.state`.
"""
