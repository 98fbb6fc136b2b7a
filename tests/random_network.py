"""A randomly initialized ensemble for the kernel tests (shared helper, not a test)."""

import torch

from pyod_odim import network


def random_parameters(arch, likelihood, batch_norm, members, seed):
    """Parameters of ``members`` random members of ``arch``, and the generator after them.

    The batch-normalization running statistics are moved away from their
    initial values, so that folding them into the weights is exercised.

    Parameters
    ----------
    arch : pyod_odim.network.Architecture
    likelihood : {"gaussian", "rectified", "bernoulli"}
    batch_norm : bool
    members : int
    seed : int

    Returns
    -------
    params : dict of str to list of Tensor
    generator : torch.Generator
        Seeded with ``seed`` and advanced past the parameters' draws.
    """
    generator = torch.Generator().manual_seed(seed)
    params = network.init_parameters(arch, members, generator, torch.device("cpu"),
                                     likelihood, batch_norm)
    for t in params["bn_mean"]:
        t.uniform_(-0.3, 0.3, generator=generator)
    for t in params["bn_var"]:
        t.uniform_(0.5, 2.0, generator=generator)
    return params, generator
