"""A two-branch patch embedder with an ArcFace (additive angular margin) head.

A patch is ``[T, F]`` log-mel frames (T frames, F mel bands), standardised by one scalar
mean and spread of the training patches (so a level change stays visible).

- Spectrogram branch: max pooling by ``stem`` (time, mel) (default 4 frames x 2 bands: a
  valve's clicks keep their peak level), then blocks of 3x3 convolution with stride 2,
  BatchNorm and ReLU, then the maximum over time at every remaining mel position; the
  ``C x F'`` map is flattened and a linear layer gives the branch embedding. The mel axis is
  not pooled: a machine's sound is tied to its frequencies.
- Statistics branch (``stats_embed > 0``): each band's maximum and mean over the patch, then
  ``Linear -> BatchNorm -> ReLU -> Linear``: the pooled view of the whole patch (after the
  spectrum branch of Wilkinghoff's DCASE 2023 system, on band statistics here).

Each branch is normalised to unit length and the two are concatenated (divided by sqrt 2),
so the embedding has unit length. Head (training only): cosine of the embedding with one
unit weight per class; the target class's angle is widened by ``margin`` before scaling by
``scale`` (Deng et al. 2019).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def stats_gradient(w1: torch.Tensor, pre: torch.Tensor, w2: torch.Tensor, u: torch.Tensor,
                   centre: torch.Tensor, joined: int) -> torch.Tensor:
    """d/d(band statistics) of ``0.5 |normalise(u) / sqrt(joined) - centre|^2``, by hand.

    The statistics branch in eval mode is ``u = w2 @ relu(pre) + b2`` with ``pre = w1 @ s + b1``
    (its BatchNorm folded into ``w1``, ``b1``); ``pre`` and ``u`` are what the forward pass
    computed. No autograd: it runs inside ``torch.inference_mode``."""
    norm = u.norm(dim=1, keepdim=True).clamp(min=1e-12)
    unit = u / norm
    r = unit / math.sqrt(joined) - centre
    g_u = (r - (r * unit).sum(dim=1, keepdim=True) * unit) / (norm * math.sqrt(joined))
    return ((g_u @ w2) * (pre > 0)) @ w1


def pooled_size(n: int, factor: int) -> int:
    return -(-n // factor)


def stem_pool(x: torch.Tensor, t: int, f: int) -> torch.Tensor:
    """``[B, T, F]`` -> ``[B, ceil(T/t), ceil(F/f)]``: the maximum of each ``t x f`` tile.

    Two contiguous reductions (time, then mel) instead of one over two strided axes, which
    was ~10x slower on one CPU thread. Ragged edges are padded with -inf (ceil mode)."""
    b, n_t, n_f = x.shape
    if t > 1:
        pad = -n_t % t
        if pad:
            x = torch.cat([x, x.new_full((b, pad, n_f), -math.inf)], dim=1)
        x = x.view(b, -1, t, n_f).amax(dim=2)
    if f > 1:
        pad = -n_f % f
        if pad:
            x = torch.cat([x, x.new_full((b, x.shape[1], pad), -math.inf)], dim=2)
        x = x.view(b, x.shape[1], -1, f).amax(dim=3)
    return x


class PatchEmbedder(nn.Module):
    """``[B, T, F]`` log-mel patches -> unit embeddings ``[B, embed + stats_embed]``."""

    def __init__(self, *, n_mels: int, channels: tuple[int, ...] = (16, 32, 64), embed: int = 64,
                 stem: tuple[int, int] = (4, 2), stats_embed: int = 32, stats_hidden: int = 128) -> None:
        super().__init__()
        if embed < 1 and stats_embed < 1:
            raise ValueError("condition-clf needs the spectrogram branch (embed > 0), the statistics "
                             "branch (stats_embed > 0) or both")
        self.stem = (int(stem[0]), int(stem[1]))
        self.n_mels = n_mels
        blocks, c_in, f_out = [], 1, pooled_size(n_mels, self.stem[1])
        for c in channels if embed > 0 else ():
            blocks += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            c_in, f_out = c, pooled_size(f_out, 2)
        self.body = nn.Sequential(*blocks)
        #: mel positions left after the stem and the strided blocks (each covers ``band_span`` bands)
        self.positions = f_out
        self.embed = nn.Linear(c_in * f_out, embed) if embed > 0 else None
        self.stats = nn.Sequential(nn.Linear(2 * n_mels, stats_hidden), nn.BatchNorm1d(stats_hidden), nn.ReLU(),
                                   nn.Linear(stats_hidden, stats_embed)) if stats_embed > 0 else None
        # input standardisation (training patches' mean and sd), stored with the weights
        self.register_buffer("center", torch.zeros(()))
        self.register_buffer("spread", torch.ones(()))

    @property
    def band_span(self) -> int:
        """Mel bands per position of the spectrogram branch's last map."""
        return self.stem[1] * 2 ** len([m for m in self.body if isinstance(m, nn.Conv2d)])

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.spread

    def spectrogram_map(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``[B, T, F]`` -> the time-pooled map ``[B, C, F']`` of the spectrogram branch."""
        z = self.body(stem_pool(x, *self.stem).unsqueeze(1))
        return z.amax(dim=2)

    @staticmethod
    def band_statistics(x: torch.Tensor) -> torch.Tensor:
        """Standardised ``[B, T, F]`` -> ``[B, 2F]``: each band's maximum, then its mean."""
        return torch.cat([x.amax(dim=1), x.mean(dim=1)], dim=1)

    def join(self, u_spec: torch.Tensor | None, u_stats: torch.Tensor | None) -> torch.Tensor:
        parts = [F.normalize(u, dim=1) for u in (u_spec, u_stats) if u is not None]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1) / math.sqrt(len(parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardise(x)
        u_spec = self.embed(self.spectrogram_map(x).flatten(1)) if self.embed is not None else None
        u_stats = self.stats(self.band_statistics(x)) if self.stats is not None else None
        return self.join(u_spec, u_stats)


class ArcFaceHead(nn.Module):
    """Unit embeddings -> margin-adjusted, scaled cosine logits ``[B, classes]``."""

    def __init__(self, embed: int, classes: int, *, scale: float = 16.0, margin: float = 0.3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, embed))
        nn.init.xavier_uniform_(self.weight)
        self.scale, self.margin = scale, margin

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        return emb @ F.normalize(self.weight, dim=1).T

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb).clamp(-1 + 1e-6, 1 - 1e-6)
        widened = torch.cos(torch.acos(cos) + self.margin)
        onehot = F.one_hot(target, cos.shape[1]).bool()
        return self.scale * torch.where(onehot, widened, cos)


class ConditionClassifier(nn.Module):
    """Embedder + head + ``subcentres`` centres per class (unit vectors; see the scorer)."""

    def __init__(self, classes: int, *, n_mels: int, channels: tuple[int, ...] = (16, 32, 64), embed: int = 64,
                 stem: tuple[int, int] = (4, 2), stats_embed: int = 32, scale: float = 16.0,
                 margin: float = 0.3, subcentres: int = 1) -> None:
        super().__init__()
        self.embedder = PatchEmbedder(n_mels=n_mels, channels=channels, embed=embed, stem=stem,
                                      stats_embed=stats_embed)
        dim = max(embed, 0) + max(stats_embed, 0)
        self.head = ArcFaceHead(dim, classes, scale=scale, margin=margin)
        self.register_buffer("centres", torch.zeros(classes, subcentres, dim))
        # what explanations compare a patch with, per class: the mean per-mel-position part of
        # the spectrogram branch's embedding, and the mean band statistics (standardised)
        e = self.embedder
        self.register_buffer("ref_parts", torch.zeros(classes, e.positions if e.embed is not None else 0,
                                                      max(embed, 0)))
        self.register_buffer("ref_stats", torch.zeros(classes, 2 * n_mels if e.stats is not None else 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)
