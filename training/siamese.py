"""The siamese head trained end to end with torch + Brevitas (quantisation-aware), exported as integers.

One tower, shared by both faces and run by the client in clear:
    q = QuantIdentity_n(W (e - mean))        a learned projection 128 -> d in integer units (its rows carry
                                             each dimension's quantisation step), a Brevitas signed n-bit
                                             quantiser with scale 1: q is exactly the integer vector encrypted
The interaction, run by the server in FHE:
    f_i(delta) = round(c_i * tanh((w_i * delta)^2 / c_i))    a learned saturating distance per dimension,
                                             delta = q_a,i - q_b,i, its values integers in [0, L - 1]
    s = sum_i f_i(delta_i);  same iff round(s) < threshold
Training: binary cross-entropy of sigmoid(alpha * (t - s)) on the training pairs (a verification loss),
straight-through rounding everywhere, so the model learns under the exact integer arithmetic it will
run with. It starts from the hand-set head (`training.head_fit`: PCA, per-dimension steps, saturated
squares), and the projection is held near that start (`tie`): the descriptors are already metric-learned
and a few thousand pairs cannot retrain 128 x d weights freely (by default only the steps are learned).

`export` evaluates f_i on every possible difference: the result is a plain `HeadParams`, so the integer
model, the concrete-python circuit and any other build of the same head all compute the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.nn import QuantIdentity
from brevitas.quant import Int8ActPerTensorFloat
from torch import nn

from fhe_head.head import HeadParams
from training.head_fit import HeadConfig, best_rounded_threshold, fit_head

VERBOSE = False


@dataclass(frozen=True)
class SiameseConfig:
    dims: int
    n_bits: int = 4
    levels: int = 16  # each f_i takes integer values in [0, levels - 1]
    target_bits: int = 5  # significant bits of the sum kept for the comparison
    clip_sigma: float = 3.0  # the starting head's quantisation range (standard deviations)
    saturation: float = 0.15  # the starting head's tables
    tie: float | None = None  # pull of the projection's axes towards PCA's (None: PCA's axes, learned steps only)
    decay: float = 1.0  # pull of the per-dimension steps, weights and caps towards the starting head's
    steps: int = 300
    lr: float = 0.02
    seed: int = 0
    kind: str = "siamese"

    def label(self) -> str:
        return (
            f"siamese d={self.dims} {self.n_bits}b L={self.levels} keep={self.target_bits}b "
            f"tie={self.tie} decay={self.decay} steps={self.steps}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_start(cls, start: HeadConfig, **training) -> SiameseConfig:
        """The trained head that starts from the hand-set head `start` (`training`: decay, steps, ...)."""
        keep = ("n_bits", "levels", "target_bits", "clip_sigma", "saturation")
        return cls(start.dims, **{name: getattr(start, name) for name in keep}, **training)

    def start(self) -> HeadConfig:
        """The hand-set head the training starts from."""
        return HeadConfig(
            self.dims,
            n_bits=self.n_bits,
            clip_sigma=self.clip_sigma,
            levels=self.levels,
            saturation=self.saturation,
            target_bits=self.target_bits,
        )


def integer_quantiser(n_bits: int) -> QuantIdentity:
    """Brevitas signed n-bit quantiser with a fixed scale of 1: its outputs are the integers
    [-2**(n-1), 2**(n-1) - 1] themselves; gradients pass straight through inside that range."""

    class UnitScale(Int8ActPerTensorFloat):
        scaling_impl_type = ScalingImplType.CONST
        restrict_scaling_type = RestrictValueType.FP
        scaling_init = float(2 ** (n_bits - 1))  # Brevitas' scale = max / 2**(n-1) = 1

    return QuantIdentity(act_quant=UnitScale, bit_width=n_bits, return_quant_tensor=False)


def straight_through_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class SiameseHead(nn.Module):
    """Tower (client) + interaction (server) of the trained head, in float with exact integer rounding."""

    def __init__(self, start: HeadParams, weight: np.ndarray, levels: int, learn_axes: bool) -> None:
        super().__init__()
        self.levels = levels
        projection = torch.tensor(start.projection / start.scale[:, None], dtype=torch.float64)
        self.register_buffer("mean", torch.tensor(start.mean, dtype=torch.float64))
        self.register_buffer("start_projection", projection)
        # rows = (start + shift) * gain: the per-dimension step (gain) is always learned, the axes (shift)
        # only where the configuration allows it
        self.axes_shift = nn.Parameter(torch.zeros_like(projection), requires_grad=learn_axes)
        self.log_gain = nn.Parameter(torch.zeros(start.dims, dtype=torch.float64))
        self.quantiser = integer_quantiser(start.n_bits).double()
        self.log_weight = nn.Parameter(torch.tensor(np.log(weight), dtype=torch.float64))
        # Per-dimension cap c_i = (L - 1) * sigmoid(cap_logit): the model may lower a noisy dimension's say.
        self.cap_logit = nn.Parameter(torch.full((start.dims,), 4.0, dtype=torch.float64))
        # The comparison keeps only the top bits of the sum: `round(s) < T` (T a multiple of 2**lsbs) is
        # exactly `s < T - 2**(lsbs-1)`. T stays the starting head's; the scores learn to fall on its
        # right side, so the exported head needs no threshold the rounding cannot express.
        self.register_buffer(
            "threshold", torch.tensor(float(start.threshold - ((1 << start.lsbs) >> 1)), dtype=torch.float64)
        )
        # The logit's slope is fixed (set by `calibrate`): a learned one grows without bound on separable
        # training pairs and turns the loss into fitting the few hardest (often mislabelled) pairs.
        self.register_buffer("log_alpha", torch.tensor(0.0, dtype=torch.float64))

    @torch.no_grad()
    def calibrate(self, a: torch.Tensor, b: torch.Tensor, same: torch.Tensor) -> None:
        """Logit slope: ~8 per distance between the classes' median scores."""
        scores = self.score(a, b)
        spread = max(float(scores[same == 0].median() - scores[same > 0].median()), 1.0)
        self.log_alpha.fill_(float(np.log(8.0 / spread)))

    @property
    def projection(self) -> torch.Tensor:
        return (self.start_projection + self.axes_shift) * torch.exp(self.log_gain)[:, None]

    def tower(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.quantiser((embeddings - self.mean) @ self.projection.T)

    def distance(self, delta: torch.Tensor) -> torch.Tensor:
        """f_i(delta), integer-valued in the forward pass."""
        cap = (self.levels - 1) * torch.sigmoid(self.cap_logit)
        return straight_through_round(cap * torch.tanh((torch.exp(self.log_weight) * delta) ** 2 / cap))

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.tower(a) - self.tower(b)).sum(dim=-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logit of 'same person'."""
        return torch.exp(self.log_alpha) * (self.threshold - self.score(a, b))

    def drift(self) -> torch.Tensor:
        """Relative squared distance of the projection's axes from their start."""
        return (self.axes_shift**2).sum() / (self.start_projection**2).sum()

    def departure(self, start: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared change of the per-dimension parameters (log step, log weight, cap logit)."""
        now = (self.log_gain, self.log_weight, self.cap_logit)
        return sum(((p - start[n]) ** 2).mean() for n, p in zip(("gain", "weight", "cap"), now, strict=True))


def starting_weights(start: HeadParams, config: SiameseConfig, a: np.ndarray, b: np.ndarray, same: np.ndarray):
    """w_i such that (w_i * delta)^2 is the hand-set head's unsaturated table (step_i * delta)^2 / unit."""
    delta = start.quantize(a) - start.quantize(b)
    per_dim = (start.scale * delta) ** 2
    unit = per_dim[~same].mean() / (config.saturation * (config.levels - 1))
    return start.scale / np.sqrt(unit)


def train(
    config: SiameseConfig, images: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray
) -> tuple[SiameseHead, HeadParams]:
    """The trained model and the hand-set head it started from."""
    torch.manual_seed(config.seed)
    start = fit_head(config.start(), images, a, b, same)
    weights = starting_weights(start, config, a, b, same)
    model = SiameseHead(start, weights, config.levels, learn_axes=config.tie is not None)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    target = torch.tensor(same, dtype=torch.float64)
    model.calibrate(ta, tb, target)
    loss_of = nn.BCEWithLogitsLoss()
    optimiser = torch.optim.Adam(
        [
            {"params": [model.axes_shift], "lr": config.lr * 0.05},
            {"params": [model.log_gain, model.log_weight, model.cap_logit]},
        ],
        lr=config.lr,
    )
    initial = {"gain": model.log_gain.detach().clone(), "weight": model.log_weight.detach().clone()}
    initial["cap"] = model.cap_logit.detach().clone()
    for step in range(config.steps):
        optimiser.zero_grad()
        loss = loss_of(model(ta, tb), target) + (config.tie or 0.0) * model.drift()
        loss = loss + config.decay * model.departure(initial)
        loss.backward()
        optimiser.step()
        if VERBOSE and step % 50 == 0:
            print(f"step {step}: loss {float(loss):.4f} drift {float(model.drift()):.4f}", flush=True)
    return model, start


def export(
    model: SiameseHead,
    start: HeadParams,
    config: SiameseConfig,
    a: np.ndarray,
    b: np.ndarray,
    same: np.ndarray,
    name: str,
) -> HeadParams:
    """The trained model as a `HeadParams`: tables = f_i on every difference, the sum rounded as the
    starting head's (`lsbs`), the threshold re-chosen on the training pairs among the rounding's multiples."""
    n_bits = config.n_bits
    offset = 2**n_bits - 1
    with torch.no_grad():
        deltas = torch.arange(-offset, offset + 1, dtype=torch.float64)
        # distance() is per dimension on the last axis: evaluate every difference as a batch of vectors
        tables = model.distance(deltas[:, None].expand(-1, config.dims)).T.numpy().round().astype(np.int64)
    params = HeadParams(
        mean=model.mean.numpy().astype(np.float32),
        projection=model.projection.detach().numpy().astype(np.float32),
        scale=np.ones(config.dims, np.float32),
        n_bits=n_bits,
        tables=tables,
        lsbs=0,
        threshold=0,
        name=name,
    )
    params.lsbs = max(start.lsbs, int(params.max_sum).bit_length() - config.target_bits)
    scores = params.score(params.quantize(a), params.quantize(b))
    params.threshold = best_rounded_threshold(scores, same, params.lsbs)
    return params


def fit_siamese(
    config: SiameseConfig, images: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray, name: str = "head"
) -> HeadParams:
    """Train on the pairs given and export the integer head (the `fit_head` of the trained kind)."""
    model, start = train(config, images, a, b, same)
    return export(model, start, config, a, b, same, name)
