"""Convert dlib's face-recognition ResNet (from the installed package) to an ONNX model.

    python -m client_encoder.export [--source FILE.dat] [--output FILE.onnx]

The graph is rebuilt from the layer sequence stored in dlib's file:
stem (conv 7x7/2, affine, relu, max-pool 3x3/2), then residual blocks of
(conv, affine, relu, conv, affine) + shortcut -> add -> relu, where a block whose strided
branch is followed by a 2x2 average pool is a "down" block (the shortcut is that pool of the
block input), then a global average pool and a bias-free 256x128 matrix.

Two dlib behaviours are reproduced exactly because they change outputs silently:
strided convolutions and pools use no padding, and when the two tensors of an `add` differ in
size dlib zero-pads the smaller one at the bottom/right and in the missing channels.
Batch-norm is already folded into `affine` layers in the file; we fold those into the
preceding convolution.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from client_encoder.dlib_dnn import DlibFormatError, Layer, read_dlib_network
from client_encoder.models import default_encoder_path, dlib_resnet_source_path

OPSET = 17  # onnxruntime 1.18 runs opsets up to 20
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs: object) -> str:
        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _fold_conv_affine(con: Layer, affine: Layer, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    num_filters, rows, cols = con.ints[:3]
    n_weights = num_filters * in_channels * rows * cols
    if con.params is None or con.params.size != n_weights + num_filters:
        raise DlibFormatError(f"conv expects {n_weights}+{num_filters} params for {in_channels} inputs")
    weights = con.params[:n_weights].reshape(num_filters, in_channels, rows, cols)
    bias = con.params[n_weights:]
    assert affine.params is not None
    gamma, beta = affine.params[:num_filters], affine.params[num_filters:]
    folded_w = (weights * gamma[:, None, None, None]).astype(np.float32)
    folded_b = (bias * gamma + beta).astype(np.float32)
    return folded_w, folded_b


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class _Tensor:
    """A graph value with its static (channels, height, width)."""

    def __init__(self, name: str, channels: int, height: int, width: int) -> None:
        self.name, self.c, self.h, self.w = name, channels, height, width


def _conv(g: _GraphBuilder, x: _Tensor, con: Layer, affine: Layer) -> _Tensor:
    num_filters, rows, cols, stride_y, stride_x, pad_y, pad_x = con.ints
    weights, bias = _fold_conv_affine(con, affine, x.c)
    out = g.op(
        "Conv",
        [x.name, g.const("w", weights), g.const("b", bias)],
        kernel_shape=[rows, cols],
        strides=[stride_y, stride_x],
        pads=[pad_y, pad_x, pad_y, pad_x],
    )
    return _Tensor(out, num_filters, _conv_out(x.h, rows, stride_y, pad_y), _conv_out(x.w, cols, stride_x, pad_x))


def _pool(g: _GraphBuilder, x: _Tensor, layer: Layer, op_type: str) -> _Tensor:
    rows, cols, stride_y, stride_x, pad_y, pad_x = layer.ints
    out = g.op(
        op_type, [x.name], kernel_shape=[rows, cols], strides=[stride_y, stride_x], pads=[pad_y, pad_x, pad_y, pad_x]
    )
    return _Tensor(out, x.c, _conv_out(x.h, rows, stride_y, pad_y), _conv_out(x.w, cols, stride_x, pad_x))


def _pad_to(g: _GraphBuilder, x: _Tensor, c: int, h: int, w: int) -> str:
    if (x.c, x.h, x.w) == (c, h, w):
        return x.name
    pads = np.array([0, 0, 0, 0, 0, c - x.c, h - x.h, w - x.w], dtype=np.int64)
    return g.op("Pad", [x.name, g.const("pads", pads)], mode="constant")


def _add_like_dlib(g: _GraphBuilder, a: _Tensor, b: _Tensor) -> _Tensor:
    """dlib's add_prev: the sum over the union of both shapes, missing values being zero."""
    c, h, w = max(a.c, b.c), max(a.h, b.h), max(a.w, b.w)
    out = g.op("Add", [_pad_to(g, a, c, h, w), _pad_to(g, b, c, h, w)])
    return _Tensor(out, c, h, w)


def build_onnx(layers: list[Layer], source_sha256: str) -> onnx.ModelProto:
    """Build the ONNX graph of dlib's metric-learning ResNet from its parsed layers."""
    g = _GraphBuilder()
    stack = list(layers)

    def take(kind: str) -> Layer:
        if not stack or stack[0].kind != kind:
            found = stack[0].kind if stack else "end of network"
            raise DlibFormatError(f"expected a {kind} layer, found {found}")
        return stack.pop(0)

    input_layer = take("input")
    rows, cols = input_layer.ints
    mean_rgb = np.array(input_layer.floats, dtype=np.float32).reshape(1, 3, 1, 1)

    # Input: NHWC RGB pixels 0..255 (as images come); dlib's input layer computes (x - mean) / 256.
    nchw = g.op("Transpose", [INPUT_NAME], perm=[0, 3, 1, 2])
    centred = g.op("Sub", [nchw, g.const("mean_rgb", mean_rgb)])
    scaled = g.op("Mul", [centred, g.const("inv_256", np.array(1.0 / 256.0, dtype=np.float32))])
    x = _Tensor(scaled, 3, rows, cols)

    x = _conv(g, x, take("con"), take("affine"))
    x = _Tensor(g.op("Relu", [x.name]), x.c, x.h, x.w)
    x = _pool(g, x, take("max_pool"), "MaxPool")

    n_blocks = 0
    while stack and stack[0].kind == "con":
        block_in = x
        y = _conv(g, x, take("con"), take("affine"))
        y = _Tensor(g.op("Relu", [y.name]), y.c, y.h, y.w)
        y = _conv(g, y, take("con"), take("affine"))
        is_down = stack and stack[0].kind == "avg_pool" and stack[0].ints[0] > 0
        shortcut = _pool(g, block_in, take("avg_pool"), "AveragePool") if is_down else block_in
        x = _add_like_dlib(g, y, shortcut)
        x = _Tensor(g.op("Relu", [x.name]), x.c, x.h, x.w)
        n_blocks += 1

    pool_all = take("avg_pool")
    if pool_all.ints[:2] != [0, 0]:
        raise DlibFormatError("expected a global average pool before the fc layer")
    pooled = g.op("GlobalAveragePool", [x.name])
    flat = g.op("Flatten", [pooled], axis=1)
    fc = take("fc")
    assert fc.params is not None
    if fc.params.shape != (x.c, fc.ints[0]):
        raise DlibFormatError(f"fc weights {fc.params.shape} do not match {x.c} inputs")
    matmul = g.op("MatMul", [flat, g.const("fc_w", np.ascontiguousarray(fc.params))])
    g.nodes.append(helper.make_node("Identity", [matmul], [OUTPUT_NAME]))
    if stack:
        raise DlibFormatError(f"{len(stack)} unexpected layers after the fc layer")

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", rows, cols, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", fc.ints[0]])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="client_encoder.export"
    )
    model.ir_version = 8  # readable by onnxruntime 1.18
    metadata = {
        "source": "dlib_face_recognition_resnet_model_v1.dat (Davis King, dlib.net), via PyPI face-recognition-models",
        "source_sha256": source_sha256,
        "license": "CC0-1.0 / public domain (model weights)",
        "residual_blocks": str(n_blocks),
        "input": f"{INPUT_NAME}: float32 [batch, {rows}, {cols}, 3], RGB pixel values 0..255 of a face chip "
        "aligned like dlib.get_face_chip(size=150, padding=0.25); normalisation (x - mean_rgb) / 256 is inside",
        "mean_rgb": ",".join(f"{v:.6f}" for v in input_layer.floats),
        "output": f"{OUTPUT_NAME}: float32 [batch, {fc.ints[0]}], NOT L2-normalised (norms ~1.3-1.5)",
        "distance": "euclidean; dlib's rule: same person if distance < 0.6",
    }
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def export(source: Path, output: Path) -> Path:
    source_bytes = source.read_bytes()
    model = build_onnx(read_dlib_network(source), hashlib.sha256(source_bytes).hexdigest())
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".onnx.tmp")
    onnx.save(model, tmp)
    tmp.replace(output)  # never leave a half-written model behind
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source", type=Path, default=None, help="dlib .dat file (default: from face-recognition-models)"
    )
    parser.add_argument("--output", type=Path, default=None, help="ONNX file to write (default: artifacts/encoder/)")
    args = parser.parse_args(argv)
    source = args.source or dlib_resnet_source_path()
    output = args.output or default_encoder_path()
    try:
        path = export(source, output)
    except (OSError, DlibFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
