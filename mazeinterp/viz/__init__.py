"""What a person looks at: figures, animations, tables and the interactive explorer.

Data flow, and the module that holds each step::

    maze, vector field, activations → figures  plots.py (matplotlib, imported on first use)
    episodes → GIF or MP4                      animation.py
    mazes, fields → rows for CSV and JSON      tables.py
    policy + maze + edits → numbers to show    explorer.py (the explorer's model)
      → the Jupyter widget                     widgets.py (ipywidgets)
"""
