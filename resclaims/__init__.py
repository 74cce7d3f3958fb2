"""resclaims: claims about residual networks, turned into statistical tests.

Every claim in ``CLAIMS.md`` becomes a pytest test under ``benchmarks/``: it trains
many seeds with a seed-batched kernel, computes a statistic with ``scipy.stats``
and turns it into a verdict (supported, refuted or inconclusive) that lands in a
report.
"""

__version__ = "0.1.0"
