"""Fuzz harnesses of the test suite and of ``scripts/``: not part of the installed package.

* :mod:`fuzzing.states` -- mutated maze states, each tried on procgen in a child process;
* :mod:`fuzzing.files` -- mutated resume files, sweep shards and ``sweep.json`` files, read back.

The tests import them with the repository root on the path (``pythonpath`` in
``pyproject.toml``); ``scripts/fuzz_states.py`` and ``scripts/fuzz_files.py`` put it there themselves.
"""
