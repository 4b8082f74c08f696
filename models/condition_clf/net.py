"""A compact CNN over log-mel patches with an ArcFace (additive angular margin) head.

Body: four blocks of 3x3 convolution, BatchNorm and ReLU over the (time, mel) plane, each
halving both axes with max pooling, then global average pooling and a linear embedding.
Head (training only): cosine of the unit embedding with one unit weight per class; the
target class's angle is widened by ``margin`` before scaling by ``scale`` (Deng et al. 2019),
so the embeddings of one condition gather tightly around their class direction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbedder(nn.Module):
    """``[B, T, F]`` log-mel patches -> unit embeddings ``[B, embed]``."""

    def __init__(self, *, channels: tuple[int, ...] = (16, 32, 64, 64), embed: int = 64) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.body = nn.Sequential(*blocks)
        self.embed = nn.Linear(c_in, embed)
        # input standardisation (training patches' mean and sd), stored with the weights
        self.register_buffer("center", torch.zeros(()))
        self.register_buffer("spread", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(((x - self.center) / self.spread).unsqueeze(1))
        return F.normalize(self.embed(z.mean(dim=(2, 3))), dim=1)


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
    """Embedder + head + one centre per class (the mean unit embedding of its training patches)."""

    def __init__(self, classes: int, *, channels: tuple[int, ...] = (16, 32, 64, 64), embed: int = 64,
                 scale: float = 16.0, margin: float = 0.3) -> None:
        super().__init__()
        self.embedder = PatchEmbedder(channels=channels, embed=embed)
        self.head = ArcFaceHead(embed, classes, scale=scale, margin=margin)
        self.register_buffer("centres", torch.zeros(classes, embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)
