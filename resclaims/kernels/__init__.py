"""One kernel per source: each trains its source's experiment for many seeds at once and returns tidy frames.

A kernel obeys :mod:`resclaims.run.contract`; it builds on :mod:`resclaims.models`, :mod:`resclaims.datasets` and
:mod:`resclaims.run` (seeding, the cache's version hashes), never on the layers above.
"""
