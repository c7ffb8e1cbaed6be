import numpy as np
import pytest

from client_encoder.dlib_dnn import DlibFormatError, _Reader, read_dlib_network
from client_encoder.models import dlib_resnet_source_path


def test_integers_follow_dlibs_control_byte_encoding():
    # 0 -> one zero byte; 300 -> two bytes little-endian; -5 -> sign bit 0x80.
    data = bytes([0x01, 0x00, 0x02, 0x2C, 0x01, 0x81, 0x05])
    reader = _Reader(data, 0)
    assert [reader.int(), reader.int(), reader.int()] == [0, 300, -5]


def test_floats_are_mantissa_times_power_of_two():
    # 122.782 is stored in the model as mantissa 0xF59062, exponent -17.
    reader = _Reader(bytes([0x03, 0x62, 0x90, 0xF5, 0x81, 0x11]), 0)
    assert reader.float() == pytest.approx(122.782, abs=1e-3)


def test_tensor_is_read_as_little_endian_float32():
    values = np.arange(6, dtype="<f4")
    header = bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x01])  # version 2, 1x2x3x1
    tensor = _Reader(header + values.tobytes(), 0).tensor()
    assert tensor.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(tensor.ravel(), values)


def test_bad_control_byte_is_a_format_error():
    with pytest.raises(DlibFormatError):
        _Reader(bytes([0x7F, 0x00]), 0).int()


def test_reads_the_shipped_resnet():
    layers = read_dlib_network(dlib_resnet_source_path())
    kinds = [layer.kind for layer in layers]
    assert kinds[0] == "input" and kinds[-1] == "fc"
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert layers[0].ints == [150, 150]
    np.testing.assert_allclose(layers[0].floats, [122.782, 117.001, 104.298], atol=1e-3)
    assert layers[-1].params.shape == (256, 128)
    strided = [layer.ints for layer in layers if layer.kind == "con" and layer.ints[3] == 2]
    assert all(ints[5:] == [0, 0] for ints in strided), "strided convolutions use no padding in dlib"


def test_a_file_that_is_not_a_dlib_network_is_rejected(tmp_path):
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"\x00" * 1000)
    with pytest.raises(DlibFormatError):
        read_dlib_network(bogus)
