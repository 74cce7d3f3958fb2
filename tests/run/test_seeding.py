"""Seeds derive from one base seed; adding seeds never changes the earlier ones."""

import numpy as np
import torch

from resclaims.run.seeding import derive_seeds, numpy_rng, torch_generator


def test_prefix_stability_and_distinct_streams():
    assert derive_seeds(7, "Z", 10)[:4] == derive_seeds(7, "Z", 4)
    assert len(set(derive_seeds(7, "Z", 1000))) == 1000
    assert set(derive_seeds(7, "Z", 50)).isdisjoint(derive_seeds(7, "M", 50))
    assert derive_seeds(7, "Z", 5) != derive_seeds(8, "Z", 5)


def test_purposes_give_independent_reproducible_generators():
    assert numpy_rng(3, "data").random() == numpy_rng(3, "data").random()
    assert numpy_rng(3, "data").random() != numpy_rng(3, "init").random()
    a = torch.rand(4, generator=torch_generator(3, "init", "zero"))
    b = torch.rand(4, generator=torch_generator(3, "init", "zero"))
    c = torch.rand(4, generator=torch_generator(3, "init", "identity"))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert np.isfinite(a.numpy()).all()
