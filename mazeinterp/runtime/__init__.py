"""How a run is carried out, shared by the library and the command line.

Data flow, and the module that holds each step::

    command-line values → checked settings     arguments.py (argparse types); values.py;
                                               defaults.py
      → resources checked before work          limits.py (memory, step caps, grids)
      → device and threads                     devices.py; threads.py
      → progress while it runs                 progress.py
      → results written, never clobbered       outputs.py; digests.py (sha256 of data and weights)
      → errors as one line                     messages.py
"""
