"""Checkpoints: from a name or a file to a policy, and back.

Data flow, and the module that holds each step::

    name ("maze-s1-r5-v5", a published name)  registry.py (SHIPPED, load_policy, save_policy)
      → published table of URLs and hashes     published.py
      → download into the per-user cache       fetch.py; fetch_hashes.py (the cache's hashes.json)
      → file on disk → checked → policy        file_format.py (keys, shapes, memory, one probe pass)

The shipped agents themselves are files in the repository's top-level ``checkpoints/``
folder, described by its ``README.md`` (the model card).
"""
