"""The dense autoencoder stack the DCASE and weakly-supervised autoencoders share.

Encoder: ``layers`` hidden layers of ``hidden`` units, then the ``latent`` layer; decoder:
``layers`` hidden layers, then a linear output of the input size. Each hidden and latent
layer is ``block(n_in, n_out)`` (the scorer's choice: with or without BatchNorm). Keras'
Glorot-uniform weights and zero biases throughout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .base import InputSpec

Block = Callable[[int, int], list[nn.Module]]


def mirrored_stack(input_dim: int, *, hidden: int, latent: int, layers: int,
                   block: Block) -> tuple[nn.Sequential, nn.Sequential]:
    """(encoder, decoder) for ``[B, input_dim]`` inputs, Glorot-initialised."""
    enc: list[nn.Module] = []
    n = input_dim
    for _ in range(layers):
        enc += block(n, hidden)
        n = hidden
    enc += block(hidden, latent)
    dec: list[nn.Module] = []
    n = latent
    for _ in range(layers):
        dec += block(n, hidden)
        n = hidden
    dec.append(nn.Linear(hidden, input_dim))
    encoder, decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    for m in (*encoder.modules(), *decoder.modules()):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return encoder, decoder


def build_dense(net: type[nn.Module], *, spec: InputSpec, hyper: dict[str, Any], seed: int) -> nn.Module:
    """``net(input_dim, hidden=, latent=, layers=)`` over flattened ``T x F`` windows, its initial
    weights reproducible from ``seed``."""
    torch.manual_seed(seed)
    return net(spec.frames * spec.features, hidden=hyper["hidden"], latent=hyper["latent"], layers=hyper["layers"])
