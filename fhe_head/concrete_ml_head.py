"""The integer head (`fhe_head.head.HeadParams`) built with Concrete-ML, beside the direct concrete-python circuit.

The same function as `fhe_head.circuit.build_function`, written as a torch + Brevitas module and compiled with
`compile_brevitas_qat_model`, two inputs encrypted separately:

    a, b      QuantIdentity, signed n_bits, scale 1, zero point 0 (shared): the integers pass unchanged
    concat    both inputs share that quantiser, so Concrete-ML adds no re-quantisation lookup
    delta     QuantLinear [I, -I] with 2-bit weights of scale 1: a - b as an integer matrix product (no lookup)
    table     sum_k t_ik * (delta == k), per-dimension constant vectors: Concrete-ML computes it in float
              and concrete-python fuses it, with the next quantiser, into ONE multi-table lookup per element
    sum       QuantIdentity (unsigned, scale 1) then QuantLinear of ones: the exact integer sum s
    rounding  Concrete-ML's exact `rounding_threshold_bits`, chosen so it removes exactly `lsbs` bits (or, where
              that one threshold would round the differences too, the sum's rounding set alone)
    decision  (s' < threshold) fused with the output quantiser into one lookup on the rounded sum

Why it is exact: every scale is 1 and every zero point 0, so the only float steps are evaluated on exact
integers and rounded by the next quantiser; round-half-up of s to `lsbs` bits is what both compilers call
(`fhe.round_bit_pattern`, exact). Checked after compilation (`check_build`): the inputs' quantisers, the
rounding Concrete-ML calibrated on each accumulator. Concrete-ML rounds without overflow protection: where the
largest sum would round past its width, the sum is shifted down by a multiple of 2**lsbs (`sum_shift`).

This is the shipped build. Artifacts: `fhe_head.build.save_artifacts(..., engine="concrete-ml")` (FHEModelDev's
server.zip and client.zip plus the project's files); roles: `fhe_head.client.FHEClient` and
`fhe_head.server.FHEServer`, which read a Concrete-ML point through FHEModelClient / FHEModelServer.
"""

from __future__ import annotations

import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.inject.enum import ScalingImplType
from brevitas.quant import Int32Bias
from concrete import fhe

from fhe_head.artifacts import CONCRETE_ML
from fhe_head.circuit import DEFAULT_GLOBAL_P_ERROR, PARAMETER_STRATEGY, configuration
from fhe_head.circuit import inputset as direct_inputset
from fhe_head.head import HeadParams

ENGINE = CONCRETE_ML
# The decision leaves the circuit through a 2-bit unsigned quantiser: Brevitas exports 1-bit quantisers as
# BipolarQuant, which Concrete-ML 1.9 does not import.
OUTPUT_BITS = 2


def unit_quantizer(bits: int, signed: bool, return_quant_tensor: bool = True) -> qnn.QuantIdentity:
    """A Brevitas quantiser with constant scale 1 and zero point 0: integers in its range pass unchanged.

    Brevitas' scale is max_val / 2**(bits-1) (signed) or max_val / (2**bits - 1) (unsigned); a constant
    scaling (not learned, not from statistics) keeps it exactly 1 whatever the data.
    """
    top = float(2 ** (bits - 1) if signed else 2**bits - 1)
    return qnn.QuantIdentity(
        bit_width=bits,
        signed=signed,
        narrow_range=False,
        scaling_impl_type=ScalingImplType.CONST,
        max_val=top,
        min_val=-top if signed else 0.0,
        return_quant_tensor=return_quant_tensor,
    )


def integer_linear(weight: np.ndarray, bias: int = 0) -> qnn.QuantLinear:
    """A QuantLinear whose weights are the given integers in {-1, 0, 1}, exactly (2-bit, narrow, scale 1), plus
    an integer bias (Int32Bias: scale = input scale x weight scale = 1) added to the accumulator before any
    rounding.

    A bias, even 0, also keeps the export one Gemm: a bias-free Linear is exported as Transpose + MatMul, and
    Concrete-ML 1.9 loses the weights' quantiser through the Transpose (it re-quantised them to 8 bits, scale
    1/127.5, which made delta non-integer).
    """
    weight = np.asarray(weight)
    if not np.isin(weight, (-1, 0, 1)).all() or not np.abs(weight).max() == 1:
        raise ValueError("integer_linear takes weights in {-1, 0, 1} with at least one non-zero")
    out_features, in_features = weight.shape
    layer = qnn.QuantLinear(
        in_features, out_features, bias=True, weight_bit_width=2, bias_quant=Int32Bias, return_quant_tensor=False
    )
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.fill_(float(bias))
    return layer


def table_bits(params: HeadParams) -> tuple[int, bool]:
    """(bits, signed) of the quantiser that holds every table value exactly."""
    low, high = int(params.tables.min()), int(params.tables.max())
    return _bits(low, high), low < 0


class IntegerHeadModule(torch.nn.Module):
    """The head as a Brevitas module: forward(a, b) = params.decide(a, b) on integer-valued float tensors."""

    def __init__(self, params: HeadParams) -> None:
        super().__init__()
        length = params.vector_length
        self.vector = unit_quantizer(params.n_bits, signed=True)  # shared by both inputs: one quantiser
        eye = np.eye(length, dtype=np.int64)
        self.difference = integer_linear(np.hstack([eye, -eye]))
        self.deltas = list(range(-params.offset, params.offset + 1))
        # column j: every element's table value at delta = self.deltas[j]
        self.register_buffer("columns", torch.tensor(params.tables.T, dtype=torch.float32))
        bits, signed = table_bits(params)
        self.looked_up = unit_quantizer(bits, signed)
        shift = sum_shift(params)
        self.total = integer_linear(np.ones((1, length), dtype=np.int64), bias=-shift)
        # round_half_up(s, lsbs) < threshold  <=>  s < threshold - 2**(lsbs-1), threshold a multiple of 2**lsbs;
        # the rounded sum is a multiple of 2**lsbs, so the same cut applies to it; the shift moves both alike.
        self.cut = float(params.threshold - ((1 << params.lsbs) >> 1) - shift)
        self.decision = unit_quantizer(OUTPUT_BITS, signed=False, return_quant_tensor=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        delta = self.difference(torch.cat([self.vector(a), self.vector(b)], dim=1))
        looked_up = 0
        for j, k in enumerate(self.deltas):  # elementwise only: concrete fuses it into one lookup per element
            looked_up = looked_up + (delta == k).float() * self.columns[j]
        total = self.total(self.looked_up(looked_up))
        return self.decision((total < self.cut).float())


def calibration_pairs(params: HeadParams, n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs that reach every delta, the smallest and the largest sum: Concrete-ML calibrates the bit width
    of each accumulator (and so the bits its rounding removes) on these."""
    pairs = direct_inputset(params, n, seed)
    deltas = np.arange(-params.offset, params.offset + 1)
    for column in (params.tables.argmin(axis=1), params.tables.argmax(axis=1)):
        delta = deltas[column]
        a = np.clip(delta, 0, None) + params.q_min
        pairs.append((a, a - delta))  # a - b = delta, both in range
    a = np.stack([p[0] for p in pairs]).astype(np.float64)
    b = np.stack([p[1] for p in pairs]).astype(np.float64)
    return a, b


def sum_range(params: HeadParams) -> tuple[int, int]:
    """The smallest and the largest sum of lookups."""
    return int(params.tables.min(axis=1).sum()), int(params.tables.max(axis=1).sum())


def sum_shift(params: HeadParams) -> int:
    """A multiple of 2**lsbs the sum's Gemm subtracts (its integer bias) so rounding cannot overflow.

    Concrete-ML rounds without overflow protection: a sum that rounds past its accumulator's bit width wraps
    around (measured on a toy head: the largest sum 63, rounded by 1 bit in 6, decided "same person"). Subtracting
    a multiple of 2**lsbs commutes with the rounding (round(s - c) = round(s) - c) and makes the accumulator
    signed, one bit wider where needed: what concrete's overflow protection does for the direct circuit. 0 for
    every head whose largest sum rounds within its width (the shipped ones).
    """
    if not params.lsbs:
        return 0
    step = 1 << params.lsbs
    low, high = sum_range(params)
    shift = 0
    while True:
        bits = _bits(low - shift, high - shift)
        first_past = (1 << bits) >> (1 if low - shift < 0 else 0)
        if high - shift + (step >> 1) < first_past:
            return shift
        shift += step


def rounding_threshold(params: HeadParams) -> dict | None:
    """Concrete-ML's `rounding_threshold_bits` that removes exactly `params.lsbs` bits from the sum.

    Concrete-ML removes (accumulator bits on the calibration set - n_bits) from *every* accumulator: the sum's
    must lose `lsbs` and the difference's (5 bits for 4-bit inputs) none; `check_build` verifies both. None when
    nothing is rounded, or when that one threshold would round the differences too (`compile_head` then sets
    the sum's rounding on its own).
    """
    if not params.lsbs:
        return None
    low, high = sum_range(params)
    shift = sum_shift(params)
    sum_bits = _bits(low - shift, high - shift)
    n_bits = sum_bits - params.lsbs
    if n_bits < _bits(-params.offset, params.offset):
        return None
    return {"n_bits": n_bits, "method": "exact"}


def _bits(low: int, high: int) -> int:
    """Bits concrete needs for integers in [low, high] (signed when low < 0), as Concrete-ML counts them."""
    if low >= 0:
        return max(high.bit_length(), 1)
    return max(high.bit_length(), (-low - 1).bit_length()) + 1


def compile_head(
    params: HeadParams,
    global_p_error: float = DEFAULT_GLOBAL_P_ERROR,
    strategy: fhe.ParameterSelectionStrategy = PARAMETER_STRATEGY,
):
    """The Concrete-ML QuantizedModule of `params`, with the direct circuit's error model and key settings.

    The underlying concrete circuit is `.fhe_circuit`. Raises RuntimeError if the build is not bit-exact by
    construction (`check_build`).
    """
    from concrete.ml.quantization.quantized_ops import QuantizedGemm
    from concrete.ml.torch.compile import compile_brevitas_qat_model

    a, b = calibration_pairs(params)
    rounding = rounding_threshold(params)
    settings = {
        "configuration": configuration(parameter_selection_strategy=strategy),
        "global_p_error": global_p_error,
        "inputs_encryption_status": ("encrypted", "encrypted"),
    }
    inputs = (torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    module = IntegerHeadModule(params).eval()
    quantized = compile_brevitas_qat_model(module, inputs, rounding_threshold_bits=rounding, **settings)
    if params.lsbs and rounding is None:
        # One threshold for every accumulator would round the differences too: round the sum alone, through the
        # attribute Concrete-ML's calibration sets (exact rounding is its default), and compile again.
        _, total = [layer for layer in quantized.quant_layers_dict.values() if isinstance(layer[1], QuantizedGemm)][-1]
        total.lsbs_to_remove = {"matmul": params.lsbs}
        quantized.compile((a, b), **settings)
    check_build(params, quantized)
    return quantized


def check_build(params: HeadParams, quantized) -> None:
    """Refuse a build that would not compute `params.decide` exactly (what Concrete-ML decided on its own)."""
    for quantizer in quantized.input_quantizers:
        if quantizer.scale != 1 or np.any(quantizer.zero_point != 0) or quantizer.n_bits != params.n_bits:
            raise RuntimeError(f"input quantiser is not the identity on {params.n_bits}-bit integers: {quantizer}")
    removed = [
        max(op.lsbs_to_remove.values(), default=0)
        for _, op in quantized.quant_layers_dict.values()
        if isinstance(getattr(op, "lsbs_to_remove", None), dict)
    ]
    if removed != [0, params.lsbs]:
        raise RuntimeError(f"Concrete-ML rounds the accumulators by {removed} bits, the head needs [0, {params.lsbs}]")


def circuit_report(quantized, global_p_error: float = DEFAULT_GLOBAL_P_ERROR) -> dict:
    """The same statistics as `fhe_head.circuit.circuit_report`, for the Concrete-ML build."""
    from fhe_head.circuit import circuit_report as direct_report

    return {**direct_report(quantized.fhe_circuit, global_p_error, True), "engine": ENGINE}
