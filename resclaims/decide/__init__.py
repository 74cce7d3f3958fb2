"""Numbers in, verdict out: statistics, procedures, calibration, simulated worlds, multiplicity, claim declarations.

The lowest layer: it imports neither torch nor pytest, nor any other part of resclaims.
"""
