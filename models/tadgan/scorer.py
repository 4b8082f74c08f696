"""Training and scoring wrapper for TadGAN (registry name ``tadgan``).

Training (Orion's loop): per epoch, shuffled windows in chunks of ``batch_size * n_critics``;
each of the ``n_critics`` mini-batches updates critic_x (Wasserstein loss on real windows vs
G(z), gradient penalty ``gp_weight``) and critic_z (prior z vs E(x), same penalty); then one
encoder+generator step on the last mini-batch: fool both critics plus ``cycle_weight`` x the
MSE of x vs G(E(x)). Adam, lr 5e-4, for all four networks.

Scoring one window (pure, so batched == one by one): the reconstruction error over the last
``rec_steps`` steps (``point``: mean |x - G(E(x))|; ``area``: |integral of the difference|
per step; ``dtw``: dynamic-time-warping distance per step), per channel, averaged over the
channels, and the critic_x value of the window. Both are z-scored with statistics of the
training windows (Orion z-scores over the test signal itself, which a stream cannot do):
``rec_z = max(0, (r - mean) / std) + 1``, ``critic_z = |c - centre| / std + 1`` with the centre
the mean of the inter-quartile critics, and combined like Orion's ``comb``: ``mult`` (default,
product), ``sum`` (0.5 / 0.5) or ``rec``. The per-channel values are the channels'
reconstruction errors times the critic factor.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..base import (EarlyStopping, FitReport, Progress, Scorer, check_training_windows, finite_or_raise,
                    time_ordered_split, train_by_epochs)
from ..errors import ScorerError
from ..sensor_rules import SensorRule
from .net import TadGAN

REC_ERRORS = ("point", "area", "dtw")
COMBS = ("mult", "sum", "rec")


def _gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                      alpha: torch.Tensor) -> torch.Tensor:
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


def dtw_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """DTW distance with |a_i - b_j| costs, along the last axis: ``[..., L]`` x2 -> ``[...]``."""
    n = a.shape[-1]
    cost = (a.unsqueeze(-1) - b.unsqueeze(-2)).abs()  # [..., L, L]
    inf = torch.full_like(cost[..., 0, 0], float("inf"))
    prev = [inf] * (n + 1)
    prev[0] = torch.zeros_like(inf)
    for i in range(n):
        row = [inf]
        for j in range(n):
            row.append(cost[..., i, j] + torch.minimum(torch.minimum(prev[j + 1], row[j]), prev[j]))
        prev = row
        prev[0] = inf
    return prev[n]


class TadGanScorer(Scorer):
    name = "tadgan"
    #: ``epochs`` is a cap, and so is ``window_passes`` (epochs x training windows: a bounded
    #: cost per fit, ~10 epochs of 400 windows); training stops earlier when the reconstruction
    #: error of the last ``validation`` fraction of the windows (time order) has not improved
    #: for ``patience`` epochs.
    defaults = {"latent": 20, "encoder_units": 100, "generator_units": 64, "epochs": 35,
                "window_passes": 4000, "batch_size": 64, "lr": 5e-4, "n_critics": 5, "gp_weight": 10.0,
                "cycle_weight": 10.0, "rec_error": "point", "rec_steps": 10, "comb": "mult",
                "validation": 0.2, "patience": 5}
    #: Orion's window 100 (shorter for a shorter dominant period, down to 30); at most 500
    #: training windows per fit (NAB's 4,032-step artificial series: every 8th window).
    sensor_rule = SensorRule(frames=100, min_frames=30, train_windows=500)

    def build(self) -> nn.Module:
        h = self.hyper
        if h["rec_error"] not in REC_ERRORS or h["comb"] not in COMBS:
            raise ScorerError(f"tadgan: rec_error must be one of {REC_ERRORS} and comb one of {COMBS}")
        if min(h["latent"], h["n_critics"], h["batch_size"], h["rec_steps"]) < 1:
            raise ScorerError(f"tadgan: latent, n_critics, batch_size, rec_steps must be >= 1: {h}")
        torch.manual_seed(self.seed)
        s = self.input_spec
        return TadGAN(s.frames, s.features, latent=h["latent"], encoder_units=h["encoder_units"],
                      generator_units=h["generator_units"])

    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        check_training_windows(self.name, windows, self.input_spec)
        h, m = self.hyper, self.module
        torch.manual_seed(self.seed)  # dropout masks
        gen = self._generator()
        flat = windows.reshape(-1, windows.shape[-1]).float()
        m.x_min.copy_(flat.amin(0))
        m.x_max.copy_(flat.amax(0))
        x = m.scale(windows.to(self.device, torch.float32))
        train, val = time_ordered_split(x, h["validation"])
        params_eg = list(m.encoder.parameters()) + list(m.generator.parameters())
        opt_cx = torch.optim.Adam(m.critic_x.parameters(), lr=h["lr"])
        opt_cz = torch.optim.Adam(m.critic_z.parameters(), lr=h["lr"])
        opt_eg = torch.optim.Adam(params_eg, lr=h["lr"])
        curve: list[dict[str, float]] = []

        def epoch() -> float:
            curve.append(self._epoch(train, gen, opt_cx, opt_cz, opt_eg))
            return curve[-1]["eg"]

        def validation() -> float:
            with torch.no_grad():
                loss = float(torch.cat([(v - m.generator(m.encoder(v))).square().mean((1, 2))
                                        for v in val.split(512)]).mean())
            curve[-1]["val_rec"] = loss
            return loss

        t0 = time.perf_counter()
        epochs = min(h["epochs"], max(1, -(-h["window_passes"] // len(train))))
        info = train_by_epochs(self.name, m, epoch, epochs=epochs,
                               val_loss=validation if val is not None else None,
                               stopping=EarlyStopping(h["patience"], min_delta=1e-3, restore_best=True),
                               progress=progress)
        m.eval()
        self.fit_score_stats(x)
        return FitReport(epochs=info["epochs"], seconds=time.perf_counter() - t0, final_loss=info["final_loss"],
                         n_windows=int(len(x)), extra={"best_epoch": info["best_epoch"],
                                                       "validation_loss": info["validation_loss"],
                                                       "curve": [{k: round(v, 5) for k, v in c.items()}
                                                                 for c in curve],
                                                       "score_stats": m.score_stats.tolist()})

    def _epoch(self, x: torch.Tensor, gen: torch.Generator, opt_cx, opt_cz, opt_eg) -> dict[str, float]:
        """One epoch of Orion's loop (module docstring); the mean critic and generator losses."""
        h, m = self.hyper, self.module
        bs, nc, latent = h["batch_size"], h["n_critics"], h["latent"]
        perm = torch.randperm(len(x), generator=gen)
        sums = {"cx": 0.0, "cz": 0.0, "eg": 0.0}
        counts = {"cx": 0, "cz": 0, "eg": 0}
        for start in range(0, len(x), bs * nc):
            chunk = perm[start:start + bs * nc]
            xb = z = None
            for i in range(nc):
                idx = chunk[i * bs:(i + 1) * bs]
                if len(idx) < 2:
                    break
                xb = x[idx.to(self.device)]
                z = torch.randn(len(idx), latent, generator=gen).to(self.device)
                a_x = torch.rand(len(idx), 1, 1, generator=gen).to(self.device)
                a_z = torch.rand(len(idx), 1, generator=gen).to(self.device)
                with torch.no_grad():
                    fake_x, fake_z = m.generator(z), m.encoder(xb)
                cx = (m.critic_x(fake_x).mean() - m.critic_x(xb).mean()
                      + h["gp_weight"] * _gradient_penalty(m.critic_x, xb, fake_x, a_x))
                opt_cx.zero_grad(set_to_none=True)
                cx.backward()
                opt_cx.step()
                cz = (m.critic_z(fake_z).mean() - m.critic_z(z).mean()
                      + h["gp_weight"] * _gradient_penalty(m.critic_z, z, fake_z, a_z))
                opt_cz.zero_grad(set_to_none=True)
                cz.backward()
                opt_cz.step()
                sums["cx"] += cx.item()
                sums["cz"] += cz.item()
                counts["cx"] += 1
                counts["cz"] += 1
            if xb is None:
                continue
            eg = (-m.critic_x(m.generator(z)).mean() - m.critic_z(m.encoder(xb)).mean()
                  + h["cycle_weight"] * (xb - m.generator(m.encoder(xb))).square().mean())
            opt_eg.zero_grad(set_to_none=True)
            eg.backward()
            opt_eg.step()
            sums["eg"] += eg.item()
            counts["eg"] += 1
        losses = {k: sums[k] / max(counts[k], 1) for k in sums}
        finite_or_raise(self.name, sum(losses.values()))
        return losses

    @torch.no_grad()
    def fit_score_stats(self, x: torch.Tensor) -> None:
        """The z-scoring statistics of ``score_detail`` (mean and spread of the reconstruction
        errors, centre and spread of the critic) from scaled training windows ``x``, under the
        current ``rec_error``."""
        rec, critic = [], []
        for i in range(0, len(x), 512):
            per_channel, c = self._raw(x[i:i + 512])
            rec.append(per_channel.mean(1))
            critic.append(c)
        rec, critic = torch.cat(rec), torch.cat(critic)
        q1, q3 = torch.quantile(critic, 0.25), torch.quantile(critic, 0.75)
        mid = critic[(critic >= q1) & (critic <= q3)]
        self.module.score_stats.copy_(torch.stack([rec.mean(), rec.std().clamp_min(1e-6),
                                                   mid.mean(), critic.std().clamp_min(1e-6)]))

    def _raw(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled windows -> (per-channel reconstruction error ``[B, F]``, critic ``[B]``)."""
        recon, critic = self.module(xs)
        n = min(self.hyper["rec_steps"], xs.shape[1])
        a, b = xs[:, -n:], recon[:, -n:]
        kind = self.hyper["rec_error"]
        if kind == "point":
            err = (a - b).abs().mean(dim=1)
        elif kind == "area":
            err = ((torch.trapezoid(a - b, dim=1)).abs() / max(n - 1, 1)) if n > 1 else (a - b).abs()[:, 0]
        else:
            err = dtw_distance(a.transpose(1, 2), b.transpose(1, 2)) / n
        return err, critic

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.module.scale(self.check_batch(batch))
        per_channel, critic = self._raw(x)
        r_mean, r_std, c_mid, c_std = self.module.score_stats
        rec_z = ((per_channel.mean(1) - r_mean) / r_std).clamp_min(0) + 1
        critic_z = (critic - c_mid).abs() / c_std + 1
        comb = self.hyper["comb"]
        if comb == "mult":
            score = rec_z * critic_z
        elif comb == "sum":
            score = 0.5 * (critic_z - 1) + 0.5 * (rec_z - 1)
        else:
            score = rec_z
        return score, per_channel * critic_z[:, None]

    @classmethod
    def test_params(cls) -> dict:
        return {"latent": 4, "encoder_units": 8, "generator_units": 8, "epochs": 2,
                "batch_size": 32, "n_critics": 2, "rec_steps": 5}
