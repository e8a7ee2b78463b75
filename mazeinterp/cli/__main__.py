"""``python -m mazeinterp.cli``: the ``mazeinterp`` command."""

from mazeinterp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
