"""One-step ARMA forecast errors as a pure ``nn.Module`` (the statsmodels fit's parameters).

Per channel c, on the (optionally once-differenced) series ``y``:
``yhat_t = mu_c + sum_i phi_ci (y_{t-i} - mu_c) + sum_j theta_cj e_{t-j}``, ``e_t = y_t - yhat_t``.
This is the recursion statsmodels' state-space filter runs for ``results.extend(new_data)``
with fixed parameters; here it starts fresh in every window (errors before the first
``P`` steps are taken as 0: the conditional-sum-of-squares start), so it is pure and
batched. For pure AR models it equals statsmodels' one-step predictions exactly from step
``P`` on; MA terms make the two agree once the start-up error has decayed.
"""
from __future__ import annotations

import torch
from torch import nn


class ArmaErrors(nn.Module):
    """``[B, T, F]`` -> one-step forecast errors ``[B, T - season - d - P, F]``."""

    def __init__(self, n_features: int, *, max_p: int, max_q: int, d: int) -> None:
        super().__init__()
        self.d, self.max_p, self.max_q = d, max_p, max_q
        self.register_buffer("ar", torch.zeros(n_features, max_p))
        self.register_buffer("ma", torch.zeros(n_features, max_q))
        self.register_buffer("mu", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))  # training error scale per channel
        self.register_buffer("precision", torch.eye(n_features))  # for combine="mewma"
        # seasonal difference lag (0 = none): y_t = x_t - x_{t-season}, before the d differences
        self.register_buffer("season", torch.zeros((), dtype=torch.long))

    def seasonal(self, x: torch.Tensor) -> torch.Tensor:
        s = int(self.season)
        return x[:, s:] - x[:, :-s] if s else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.seasonal(x)
        y = torch.diff(x, n=self.d, dim=1) if self.d else x
        p, t = self.max_p, y.shape[1]
        yc = y - self.mu
        pred = torch.zeros_like(yc[:, p:])
        for i in range(1, p + 1):  # AR part, vectorised over time
            pred += self.ar[:, i - 1] * yc[:, p - i:t - i]
        if self.max_q == 0:
            return yc[:, p:] - pred
        errs: list[torch.Tensor] = []
        for s in range(t - p):  # the MA part needs the previous errors: a short loop
            e = yc[:, p + s] - pred[:, s]
            for j in range(1, min(self.max_q, s) + 1):
                e = e - self.ma[:, j - 1] * errs[s - j]
            errs.append(e)
        return torch.stack(errs, dim=1)
