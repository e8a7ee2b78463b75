"""Maze geometry, procgen maze states and the batched maze environment.

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
