"""Protocol and seeds in, tidy frame out: the kernel contract, the run cache, the published run store, seeding,
progress, and the engines that spread training (:mod:`resclaims.run.engines`).

Below it: :mod:`resclaims.models`, :mod:`resclaims.datasets`, :mod:`resclaims.decide`. It imports no kernel; kernels
are named by their protocols and imported by name (:func:`resclaims.run.contract.kernel_of`).
"""
