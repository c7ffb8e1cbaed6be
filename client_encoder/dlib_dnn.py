"""Read the weights of dlib's face-recognition ResNet from its own serialization.

dlib writes a network as nested layer wrappers (outermost first) followed by each layer's
details from the input side outward. Every layer that carries state starts with a
length-prefixed type string ("con_4", "affine_", ...). We locate those strings in order and
decode the fields that follow them; layers without state (relu, tags, add_prev) write no
string in this file version, so the topology comes from the known architecture
(`client_encoder.export`), and this module checks that the layer sequence matches it.

Format facts (dlib/serialize.h, dlib/cuda/tensor.h):
- integers: a control byte (low nibble = byte count, bit 0x80 = negative) then little-endian bytes;
- floats: a (mantissa, exponent) integer pair, value = mantissa * 2**exponent;
- strings: an integer length then the bytes;
- tensors: version 2, then num_samples, k, nr, nc, then raw little-endian float32 values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from privface_core.errors import ArtifactError

# A serialized string of a layer type: control byte 0x01, one length byte, the name.
_LAYER_NAME = re.compile(rb"\x01([\x03-\x20])([a-z_]+[0-9]?)")
_KNOWN_LAYERS = ("input_rgb_image_sized", "con_", "affine_", "max_pool_", "avg_pool_", "fc_", "loss_")


class DlibFormatError(ArtifactError, ValueError):
    """The file is not a dlib network of the layout this converter understands."""


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise DlibFormatError("unexpected end of file while reading an integer")
        control = self.data[self.pos]
        size, negative = control & 0x0F, bool(control & 0x80)
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {self.pos}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        length = self.int()
        text = self.data[self.pos : self.pos + length].decode("ascii")
        self.pos += length
        return text

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at offset {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise DlibFormatError("tensor runs past the end of the file")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return values.reshape(shape).astype(np.float32)


@dataclass
class Layer:
    """One stateful layer of a dlib network, as stored."""

    kind: str  # "input", "con", "affine", "max_pool", "avg_pool", "fc", "loss"
    params: np.ndarray | None = None
    ints: list[int] = field(default_factory=list)
    floats: list[float] = field(default_factory=list)


def _parse_layer(reader: _Reader, name: str) -> Layer:
    if name == "input_rgb_image_sized":
        means = [reader.float() for _ in range(3)]
        rows, cols = reader.int(), reader.int()
        return Layer("input", floats=means, ints=[rows, cols])
    if name.startswith("con_"):
        params = reader.tensor()
        # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
        return Layer("con", params=params.ravel(), ints=[reader.int() for _ in range(7)])
    if name == "affine_":
        return Layer("affine", params=reader.tensor().ravel())
    if name.startswith(("max_pool_", "avg_pool_")):
        # nr, nc, stride_y, stride_x, padding_y, padding_x (nr = nc = 0 means "pool everything")
        return Layer(name.rsplit("_", 1)[0], ints=[reader.int() for _ in range(6)])
    if name.startswith("fc_"):
        num_outputs, num_inputs = reader.int(), reader.int()
        params = reader.tensor()
        return Layer("fc", params=params.reshape(-1, num_outputs), ints=[num_outputs, num_inputs])
    if name.startswith("loss_"):
        return Layer("loss")
    raise DlibFormatError(f"unsupported layer type {name!r}")


def read_dlib_network(path: str | Path) -> list[Layer]:
    """Return the stateful layers of a dlib DNN file, input side first."""
    data = Path(path).read_bytes()
    layers: list[Layer] = []
    pos = 0
    while True:
        match = _LAYER_NAME.search(data, pos)
        if match is None:
            break
        name = match.group(2).decode("ascii")
        if len(name) != match.group(1)[0] or not name.startswith(_KNOWN_LAYERS):
            pos = match.start() + 1
            continue
        reader = _Reader(data, match.end())
        layers.append(_parse_layer(reader, name))
        pos = reader.pos
    # The loss layer is written first (outermost wrapper); the rest run input side outward.
    layers = [layer for layer in layers if layer.kind != "loss"]
    if not layers or layers[0].kind != "input":
        raise DlibFormatError(f"{path}: no dlib input layer found; not a dlib DNN file?")
    return layers
