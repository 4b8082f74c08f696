"""Training-side helpers of the condition classifier: clips back into frame sequences (to cut
random crops from), and the spherical k-means that places a condition's centres."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_sequences(x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor | None, spec) -> list[tuple[torch.Tensor, int]]:
    """Each clip's frame sequence rebuilt from its vectors (consecutive, ``spec.hop`` frames
    apart, at most ``spec.frames``), with its class; without clip ids every vector is its own."""
    if ids is None or spec.hop > spec.frames:
        return [(v, int(c)) for v, c in zip(x, y)]
    out = []
    start = 0
    n = len(x)
    while start < n:
        end = start + 1
        while end < n and ids[end] == ids[start] and y[end] == y[start]:
            end += 1
        v = x[start:end]
        seq = torch.cat([v[0], v[1:, spec.frames - spec.hop:].reshape(-1, v.shape[2])]) if len(v) > 1 else v[0]
        out.append((seq, int(y[start])))
        start = end
    return out


def spherical_kmeans(emb: torch.Tensor, k: int, gen: torch.Generator, iters: int = 25) -> torch.Tensor:
    """``k`` unit centres of unit embeddings (k = 1: the normalised mean)."""
    if k == 1 or len(emb) <= k:
        c = F.normalize(emb.mean(dim=0, keepdim=True), dim=1)
        return c.expand(k, -1).clone()
    centres = emb[torch.randperm(len(emb), generator=gen)[:k].to(emb.device)].clone()
    for _ in range(iters):
        assign = (emb @ centres.T).argmax(dim=1)
        centres = torch.stack([F.normalize(emb[assign == j].mean(dim=0), dim=0) if (assign == j).any()
                               else centres[j] for j in range(k)])
    return centres
