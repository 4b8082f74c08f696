"""Training and scoring wrapper for the condition classifier (registry ``condition-clf``).

Trained on normal patches to tell apart the conditions the clips were recorded under
(machine ID, section, operating attributes such as a valve's ``pat_XX``); a patch's score is
its squared distance to the nearest centre of its own condition on the unit sphere,
``0.5 * |e - c|^2 = 1 - cos(e, c)``: how badly it fits the condition it claims. The centres
are measured on the training patches themselves (the normalised mean embedding of each
condition, or ``subcentres`` spherical k-means centres), so the head's scale needs no
calibration.

Patches are long (4 s by default): a valve's operating pattern repeats every 1-3 s, and a
classifier shown 1 s could not name the pattern of held-out clips (see README.md). Training
sees random crops: a clip's vectors are stitched back into its frame sequence (``clip_ids``)
and every epoch cuts ``crops_per_clip`` patches at random offsets.

The condition of what is scored: a model trained on one condition scores with it; a model
that knows several must be bound to one with ``with_condition(name)`` (a stream is one
machine in one program), and an unknown name is an error that lists the known ones.

With one condition there is nothing to tell apart, so extra "not this machine" classes are
added: ``exposure`` patches (other machines' normal sound, passed to ``fit``) and, with
``pseudo="mel-shift"``, the training patches moved up or down by ``shift_bands`` mel bands (a
pitch shift). Labelled faults (``labels``: 1 = a fault's patch, ``monitor train --weak``)
join as one more class, ``weak="class"``. Scoring uses only the real conditions' centres.

Explanation (``score_detail``'s contributions, ``[B, F]``, summing to the score): the score
splits exactly into the two branches' shares; the spectrogram branch's share goes to its
mel positions in proportion to how far each position's part of the embedding moved from
its condition's training mean (the part the centre's direction does not absorb), the
statistics branch's share to the bands by gradient x change of their statistics. So an
event names the mel bands that moved the embedding; ``nearest_conditions`` names the
condition a patch looked most like.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..base import FitReport, Progress, Scorer, check_training_windows, epoch_batches, finite_or_raise
from ..errors import ScorerError
from ..folding import fold_bn
from .fast import FoldedEmbedder
from .patches import clip_sequences, spherical_kmeans
from .net import ConditionClassifier, stats_gradient

EXPOSURE = "exposure:other-machines"
PSEUDO = "pseudo:mel-shift"
WEAK = "weak:labelled-faults"


class ConditionClassifierScorer(Scorer):
    name = "condition-clf"
    # 5 held-out valve clips put the threshold anywhere (held-out FPR .18/.44/.06 on seeds 0-2,
    # cross-fitted .14/.18/.14; benchmarks/results/issue20)
    threshold_folds = 5
    defaults = {"channels": [16, 32, 64], "embed": 64, "stem": [4, 2], "stats_embed": 32,
                "scale": 16.0, "margin": 0.3, "epochs": 40, "batch_size": 32, "lr": 1e-3,
                "crops_per_clip": 6, "subcentres": 1, "mixup": 0.0,
                "pseudo": "auto", "shift_bands": 6, "weak": "class",
                "conditions": [], "known": 1}
    #: patches of 124 frames (3.97 s), a new one every 31 frames (0.99 s); the alerting window
    #: (5 s, moving by 0.5 s) holds one or two of them wholly
    audio_defaults = {**Scorer.audio_defaults, "frames": 124, "vector_hop": 31, "window_s": 5.0}
    fit_context = ("conditions", "exposure", "clip_ids")
    #: ``monitor train --weak`` passes labelled faults (``labels``) to ``fit``
    learns_from_labels = True

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.condition: int | None = None

    def build(self) -> nn.Module:
        h = self.hyper
        if h["pseudo"] not in ("auto", "mel-shift", "none"):
            raise ScorerError(f"condition-clf: pseudo must be auto, mel-shift or none, got {h['pseudo']!r}")
        if h["weak"] not in ("class", "none"):
            raise ScorerError(f"condition-clf: weak must be class or none, got {h['weak']!r}")
        if int(h["subcentres"]) < 1 or int(h["crops_per_clip"]) < 1:
            raise ScorerError("condition-clf: subcentres and crops_per_clip must be at least 1")
        torch.manual_seed(self.seed)
        try:
            return ConditionClassifier(max(len(h["conditions"]), 2), n_mels=self.input_spec.features,
                                       channels=tuple(h["channels"]), embed=h["embed"], stem=tuple(h["stem"]),
                                       stats_embed=h["stats_embed"], scale=h["scale"], margin=h["margin"],
                                       subcentres=int(h["subcentres"]))
        except ValueError as exc:
            raise ScorerError(f"condition-clf: {exc}") from None

    # -- the condition ----------------------------------------------------------------------
    @property
    def known_conditions(self) -> list[str]:
        """The real conditions (not the exposure, pseudo or fault classes), in class order."""
        return list(self.hyper["conditions"][: self.hyper["known"]])

    def with_condition(self, condition: str) -> "ConditionClassifierScorer":
        """This scorer (same weights) scoring every patch against ``condition``'s centres."""
        known = self.known_conditions
        if condition not in known:
            raise ScorerError(f"condition-clf: unknown condition {condition!r}; this model knows "
                              f"{', '.join(known) or 'none (it is not trained)'}")
        bound = copy.copy(self)
        bound.condition = known.index(condition)
        return bound

    def condition_index(self) -> int:
        if self.condition is not None:
            return self.condition
        if self.hyper["known"] == 1:
            return 0
        raise ScorerError(f"condition-clf: this model knows {self.hyper['known']} conditions "
                          f"({', '.join(self.known_conditions)}); the stream's condition must be "
                          "given (models[].condition in the config, --condition, or the clip name)")

    # -- training ----------------------------------------------------------------------------
    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None, conditions: list[str] | None = None,
            exposure: torch.Tensor | None = None, clip_ids: torch.Tensor | None = None) -> FitReport:
        """``windows`` (normal patches first, then any labelled faults' patches, ``labels`` 1);
        ``conditions``: one per normal patch; ``clip_ids``: the clip of every patch (normal and
        faults), for random crops. Without ``clip_ids`` the patches are used as given."""
        check_training_windows(self.name, windows, self.input_spec)
        h = self.hyper
        fault = torch.zeros(len(windows), dtype=torch.bool) if labels is None else labels.bool().cpu()
        if len(fault) != len(windows):
            raise ScorerError(f"condition-clf: {len(fault)} labels for {len(windows)} windows")
        n_normal = int((~fault).sum())
        if fault[:n_normal].any():
            raise ScorerError("condition-clf: labelled faults' patches must follow the normal ones")
        if n_normal < 2:
            raise ScorerError(f"condition-clf: need at least 2 normal patches, got {n_normal}")
        if conditions is not None and len(conditions) != n_normal:
            raise ScorerError(f"condition-clf: {len(conditions)} conditions for {n_normal} normal windows")
        names = sorted(set(conditions)) if conditions is not None else ["default"]
        index = {n: i for i, n in enumerate(names)}
        y_normal = torch.tensor([index[c] for c in conditions]) if conditions is not None else \
            torch.zeros(n_normal, dtype=torch.long)
        x = windows.to(torch.float32)
        ids = torch.as_tensor(clip_ids).cpu() if clip_ids is not None else None
        if ids is not None and len(ids) != len(windows):
            raise ScorerError(f"condition-clf: {len(ids)} clip ids for {len(windows)} windows")
        classes = list(names)
        # labelled class of every patch: conditions, then the faults' class
        y = torch.empty(len(windows), dtype=torch.long)
        y[:n_normal] = y_normal
        if fault.any():
            if h["weak"] == "none":
                raise ScorerError("condition-clf: labelled faults given but weak is none")
            classes.append(WEAK)
            y[n_normal:] = len(classes) - 1
        exposure_x = exposure.to(torch.float32) if exposure is not None and len(exposure) else None
        if exposure_x is not None:
            classes.append(EXPOSURE)
        pseudo = h["pseudo"] == "mel-shift" or (h["pseudo"] == "auto" and len(names) == 1 and exposure_x is None
                                               and not fault.any())
        if pseudo:
            classes.append(PSEUDO)
        if len(classes) < 2:
            raise ScorerError("condition-clf: one condition and no exposure, pseudo or fault class: "
                              "nothing to tell apart (set pseudo to mel-shift or pass exposure)")
        h["conditions"], h["known"] = classes, len(names)
        self.module = self.build().to(self.device)
        net = self.module
        with torch.no_grad():
            normal_x = x[:n_normal]
            net.embedder.center.fill_(float(normal_x.mean()))
            net.embedder.spread.fill_(float(normal_x.std()) or 1.0)
        sequences = clip_sequences(x, y, ids, self.input_spec)
        gen = self._generator()
        opt = torch.optim.Adam(net.parameters(), lr=h["lr"])
        t0 = time.perf_counter()
        loss_value = float("nan")
        for epoch in range(h["epochs"]):
            xb_all, yb_all = self._epoch_patches(sequences, gen)
            extra_x, extra_y = [], []
            n_real = int((yb_all < len(names)).sum())
            if exposure_x is not None:
                pick = torch.randint(0, len(exposure_x), (n_real,), generator=gen)
                extra_x.append(exposure_x[pick])
                extra_y.append(torch.full((n_real,), classes.index(EXPOSURE)))
            if pseudo:
                k = int(h["shift_bands"])
                real = xb_all[yb_all < len(names)]
                sign = torch.randint(0, 2, (len(real),), generator=gen).bool()
                shifted = torch.where(sign[:, None, None], torch.roll(real, k, dims=2), torch.roll(real, -k, dims=2))
                extra_x.append(shifted)
                extra_y.append(torch.full((len(real),), classes.index(PSEUDO)))
            xa = torch.cat([xb_all, *extra_x]).to(self.device)
            ya = torch.cat([yb_all, *extra_y]).to(self.device)
            net.train()
            total, count = 0.0, 0
            for idx in epoch_batches(len(xa), h["batch_size"], gen):
                if idx.numel() < 2:  # BatchNorm cannot train on one sample
                    continue
                idx = idx.to(self.device)
                opt.zero_grad(set_to_none=True)
                loss = self._loss(net, xa[idx], ya[idx], gen)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                count += len(idx)
            loss_value = finite_or_raise(self.name, total / max(count, 1))
            if progress is not None:
                progress(epoch + 1, h["epochs"], loss_value)
        net.eval()
        with torch.no_grad():
            emb = self._embed_plain(x)
            for c in range(len(classes)):
                sel = emb[y == c] if c < len(names) or classes[c] == WEAK else None
                if sel is None and classes[c] == EXPOSURE:
                    sel = self._embed_plain(exposure_x)
                if sel is not None and len(sel):
                    net.centres[c] = spherical_kmeans(sel, int(h["subcentres"]), self._generator())
            self._set_references(x[:n_normal], y_normal)
            real = y < len(names)
            acc = float((self._nearest(emb[real])[0] == y[real]).float().mean())
        return FitReport(epochs=h["epochs"], seconds=time.perf_counter() - t0, final_loss=loss_value,
                         n_windows=int(len(windows)),
                         extra={"classes": classes, "patches": int(n_normal), "fault_patches": int(fault.sum()),
                                "clips": len(sequences), "train_accuracy": round(acc, 4),
                                "crops": "random" if ids is not None else "as given"})

    def _epoch_patches(self, sequences: list[tuple[torch.Tensor, int]],
                       gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``crops_per_clip`` patches of every clip at random offsets (a clip shorter than a
        patch cannot occur: its vectors are whole patches)."""
        T, k = self.input_spec.frames, int(self.hyper["crops_per_clip"])
        xs, ys = [], []
        for seq, label in sequences:
            if len(seq) == T:  # one patch (or no clip ids): as given
                xs.append(seq[None])
                ys.append(label)
                continue
            offsets = torch.randint(0, len(seq) - T + 1, (k,), generator=gen)
            xs.append(torch.stack([seq[o:o + T] for o in offsets.tolist()]))
            ys += [label] * k
        return torch.cat(xs), torch.tensor(ys)

    def _loss(self, net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        alpha = float(self.hyper["mixup"])
        if alpha <= 0:
            return F.cross_entropy(net.head(net(xb), yb), yb)
        lam = float(torch.distributions.Beta(alpha, alpha).sample())  # seeded by build()'s manual_seed
        j = torch.randperm(len(xb), generator=gen).to(xb.device)
        emb = net(lam * xb + (1 - lam) * xb[j])
        return lam * F.cross_entropy(net.head(emb, yb), yb) + (1 - lam) * F.cross_entropy(net.head(emb, yb[j]), yb[j])

    def _set_references(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Per real condition: the mean per-position part of the spectrogram embedding and the
        mean band statistics of its training patches (what an explanation compares with)."""
        net, emb = self.module, self.module.embedder
        known = int(self.hyper["known"])
        for i in range(0, len(x), 256):
            xb = emb.standardise(x[i:i + 256].to(self.device))
            onehot = F.one_hot(y[i:i + 256].to(self.device), net.ref_parts.shape[0]).to(xb)
            if emb.embed is not None:
                net.ref_parts += torch.einsum("bk,bpe->kpe", onehot, self._position_parts(emb.spectrogram_map(xb)))
            if emb.stats is not None:
                net.ref_stats += onehot.T @ emb.band_statistics(xb)
        count = torch.bincount(y, minlength=net.ref_parts.shape[0]).clamp(min=1).to(x.dtype).to(self.device)
        net.ref_parts /= count[:, None, None]
        net.ref_stats /= count[:, None]
        net.ref_parts[known:] = 0.0
        net.ref_stats[known:] = 0.0

    # -- scoring ------------------------------------------------------------------------------
    #: Score through the folded inference form (``fast.py``); ``False`` = the plain module.
    fast: bool = True

    def _embedder(self):
        if self.fast and not self.module.training:
            return self.folded()
        return None

    def folded(self) -> FoldedEmbedder:
        """The BatchNorm-folded, channels-last form, rebuilt whenever a weight has changed."""
        key = tuple(t._version for t in (*self.module.parameters(), *self.module.buffers()))
        key = (id(self.module), self.device, key)
        cached = getattr(self, "_folded", None)
        if cached is None or cached[0] != key:
            self._folded = (key, FoldedEmbedder(self.module.embedder))
        return self._folded[1]

    def _embed_plain(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.module(x[i:i + 512].to(self.device)) for i in range(0, len(x), 512)])

    def _position_parts(self, zmap: torch.Tensor) -> torch.Tensor:
        """``[B, C, P]`` time-pooled map -> ``[B, P, E]``: each mel position's additive part of
        the spectrogram branch's (pre-normalisation) embedding (the bias belongs to none)."""
        lin = self.module.embedder.embed
        b, c, p = zmap.shape
        w = lin.weight.view(lin.out_features, c, p)  # flatten(1) of [C, P] is channel-major
        return torch.einsum("bcp,ecp->bpe", zmap, w)

    @torch.inference_mode()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` -> unit embeddings ``[B, E]``."""
        x = self.check_batch(batch)
        fast = self._embedder()
        return fast.embed_of(x) if fast is not None else self.module(x)

    def _nearest(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index of the nearest real condition, the distance to each real condition ``[B, K]``)."""
        known = int(self.hyper["known"])
        cen = self.module.centres[:known]  # [K, S, E]
        dist = (1.0 - torch.einsum("be,kse->bks", emb, cen)).amin(dim=2)
        return dist.argmin(dim=1), dist

    @torch.inference_mode()
    def nearest_conditions(self, batch: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """The condition each patch looked most like, and its distances to every known one."""
        idx, dist = self._nearest(self.embed(batch))
        known = self.known_conditions
        return [known[i] for i in idx.tolist()], dist

    @torch.inference_mode()
    def looked_most_like(self, batch: torch.Tensor) -> tuple[str, dict[str, float]]:
        """The known condition nearest to the mean embedding of ``batch``'s patches (a clip, an
        event's audio), and the distance (1 - cos) to every known condition."""
        emb = F.normalize(self.embed(batch).mean(dim=0, keepdim=True), dim=1)
        idx, dist = self._nearest(emb)
        known = self.known_conditions
        return known[int(idx)], {k: round(float(d), 6) for k, d in zip(known, dist[0].tolist())}

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.check_batch(batch)
        c = self.condition_index()
        if not len(x):
            return x.new_zeros(0), x.new_zeros(0, self.input_spec.features)
        fast = self._embedder()
        emb_mod = self.module.embedder
        xs = emb_mod.standardise(x) if fast is None else None
        parts = fast.branches(x) if fast is not None else _plain_branches(emb_mod, xs)
        zmap, u_spec, stats, u_stats = parts
        e = emb_mod.join(u_spec, u_stats)
        centres = self.module.centres[c]  # [S, E]
        # 0.5 |e - c|^2 = 1 - cos for unit vectors, without the cancellation of 1 - cos near 0
        d = 0.5 * (e[:, None, :] - centres[None]).square().sum(dim=2)  # [B, S]
        score, nearest = d.min(dim=1)
        centre = centres[nearest]  # [B, E]
        return score, self._contributions(e, centre, zmap, u_spec, stats, u_stats, c, fast)

    def _contributions(self, e, centre, zmap, u_spec, stats, u_stats, c: int, fast) -> torch.Tensor:
        """``[B, F]`` per-band shares of the score (see the module docstring); they sum to it."""
        emb_mod = self.module.embedder
        b, n_f = e.shape[0], self.input_spec.features
        out = e.new_zeros(b, n_f)
        d1 = emb_mod.embed.out_features if emb_mod.embed is not None else 0
        if u_spec is not None:
            s1 = 0.5 * (e[:, :d1] - centre[:, :d1]).square().sum(dim=1)
            parts = fast.position_parts(zmap) if fast is not None else self._position_parts(zmap)
            moved = parts - self.module.ref_parts[c][None]  # [B, P, E]
            direction = F.normalize(centre[:, :d1], dim=1)[:, None, :]
            off = moved - (moved * direction).sum(dim=2, keepdim=True) * direction
            w = off.square().sum(dim=2)
            w = w / w.sum(dim=1, keepdim=True).clamp(min=1e-30)
            span = emb_mod.band_span
            per_band = torch.repeat_interleave(w * s1[:, None] / span, span, dim=1)[:, :n_f]
            out += per_band
        if u_stats is not None:
            s2 = 0.5 * (e[:, d1:] - centre[:, d1:]).square().sum(dim=1)
            g = (fast.stats_gradient(stats, u_stats, centre[:, d1:]) if fast is not None
                 else _stats_gradient(emb_mod, stats, u_stats, centre[:, d1:]))
            moved = (g * (stats - self.module.ref_stats[c][None])).abs()
            w = moved[:, :n_f] + moved[:, n_f:]
            w = w / w.sum(dim=1, keepdim=True).clamp(min=1e-30)
            out += w * s2[:, None]
        return out

    @classmethod
    def test_params(cls) -> dict:
        return {"epochs": 3, "channels": [4, 8], "embed": 8, "stats_embed": 4, "stem": [1, 1], "crops_per_clip": 2}


def _plain_branches(emb_mod, xs: torch.Tensor):
    zmap = emb_mod.spectrogram_map(xs) if emb_mod.embed is not None else None
    u_spec = emb_mod.embed(zmap.flatten(1)) if zmap is not None else None
    stats = emb_mod.band_statistics(xs) if emb_mod.stats is not None else None
    u_stats = emb_mod.stats(stats) if stats is not None else None
    return zmap, u_spec, stats, u_stats


def _stats_gradient(emb_mod, stats: torch.Tensor, u_stats: torch.Tensor, centre2: torch.Tensor) -> torch.Tensor:
    """d score / d band statistics of the statistics branch (``net.stats_gradient``)."""
    lin1, bn, _, lin2 = emb_mod.stats
    w1, b1 = fold_bn(lin1.weight, lin1.bias, bn)
    joined = (emb_mod.embed is not None) + 1
    return stats_gradient(w1, F.linear(stats, w1, b1), lin2.weight, u_stats, centre2, joined)
