"""Inference graphs for ONNX Runtime, written from NumPy weights without torch or the onnx package.

The learned blurs (``bgan blur``, ``uid blur``) can run their networks in ONNX Runtime, which
imports in a tenth of a second where torch takes most of one: :class:`Graph` collects the
nodes of a network whose layers the caller names (the architectures are blursynth's own, so
the caller knows them), and :meth:`Graph.session` serialises the model as ONNX's protobuf
messages (`onnx.proto`, opset 17) and opens it on the CPU with one thread. One thread: the
pair writers' parallelism is their pool of processes, and a fixed thread count keeps each
pair's bytes the same whatever the machine's load.

Only what those networks use is here: convolutions (plain and transposed), instance
normalisation, reflection padding, pointwise arithmetic, activations, a linear layer.
"""

from __future__ import annotations

import struct

import numpy as np

#: The ONNX operator set the graphs are written for (ONNX Runtime 1.13 and later run it).
OPSET = 17
_IR_VERSION = 8
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7  # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 fields: negative numbers as their two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _bytes_field(number: int, value) -> bytes:
    value = value.encode() if isinstance(value, str) else bytes(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _float_field(number: int, value: float) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<f", float(value))


def _attribute(name: str, value) -> bytes:
    out = _bytes_field(1, name)
    if isinstance(value, str):
        return out + _bytes_field(4, value) + _int_field(20, _ATTR_STRING)
    if isinstance(value, float):
        return out + _float_field(2, value) + _int_field(20, _ATTR_FLOAT)
    if isinstance(value, (list, tuple)):
        return out + b"".join(_int_field(8, v) for v in value) + _int_field(20, _ATTR_INTS)
    return out + _int_field(3, value) + _int_field(20, _ATTR_INT)


def _tensor(name: str, array: np.ndarray) -> bytes:
    kind = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[array.dtype]
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return (b"".join(_int_field(1, d) for d in array.shape) + _int_field(2, kind)
            + _bytes_field(8, name) + _bytes_field(9, data))


def _value_info(name: str, dims) -> bytes:
    """A float32 tensor's name, type and shape (``dims``: sizes, and names of free sizes)."""
    shape = b"".join(_bytes_field(1, _bytes_field(2, d) if isinstance(d, str) else _int_field(1, d))
                     for d in dims)
    tensor_type = _int_field(1, _FLOAT) + _bytes_field(2, shape)
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


class Graph:
    """A network being written: inputs, weights and nodes, each output named by the builder.

    Every method adds a node and returns the name of its output, so a network reads as the
    calls of its layers. Weights are NumPy arrays (float32); they are copied into the model.

    Examples
    --------
    >>> g = Graph()
    >>> x = g.input("x", (1, 1, "h", "w"))
    >>> y = g.conv(x, np.ones((1, 1, 3, 3), np.float32), np.zeros(1, np.float32), pad=1)
    >>> g.output(g.relu(y), (1, 1, "h", "w"))
    >>> out = g.session().run(None, {"x": np.ones((1, 1, 2, 3), np.float32)})[0]
    >>> out[0, 0].tolist()
    [[4.0, 6.0, 4.0], [4.0, 6.0, 4.0]]
    """

    def __init__(self):
        self._nodes, self._weights, self._inputs, self._outputs = [], [], [], []
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}{self._count}"

    def input(self, name: str, dims) -> str:
        """A float32 input; ``dims`` holds sizes and names of free sizes."""
        self._inputs.append(_value_info(name, dims))
        return name

    def output(self, name: str, dims) -> None:
        """Make ``name`` a float32 output of ``dims`` (sizes, and names of the inputs' free sizes)."""
        self._outputs.append(_value_info(name, dims))

    def weight(self, array, dtype=np.float32) -> str:
        name = self._name("w")
        self._weights.append(_tensor(name, np.asarray(array, dtype)))
        return name

    def node(self, op: str, inputs, n_outputs: int = 1, **attributes):
        """Add ``op`` on ``inputs`` (names); the output's name, or a list of ``n_outputs``."""
        outs = [self._name(op.lower()) for _ in range(n_outputs)]
        body = (b"".join(_bytes_field(1, i) for i in inputs) + b"".join(_bytes_field(2, o) for o in outs)
                + _bytes_field(3, outs[0]) + _bytes_field(4, op)
                + b"".join(_bytes_field(5, _attribute(k, v)) for k, v in sorted(attributes.items())))
        self._nodes.append(body)
        return outs[0] if n_outputs == 1 else outs

    # -- layers ---------------------------------------------------------------------------------

    def conv(self, x: str, w, b, *, stride: int = 1, pad: int = 0) -> str:
        """A 2-D convolution, weights ``(out, in, k, k)`` as torch's ``Conv2d`` keeps them, zero
        padding ``pad`` on every side."""
        k = int(np.shape(w)[-1])
        return self.node("Conv", [x, self.weight(w), self.weight(b)], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4)

    def conv_transpose(self, x: str, w, b, *, stride: int, pad: int) -> str:
        """A transposed 2-D convolution, weights ``(in, out, k, k)`` as torch's keeps them."""
        k = int(np.shape(w)[-1])
        return self.node("ConvTranspose", [x, self.weight(w), self.weight(b)], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4)

    def reflect_pad(self, x: str, pad: int) -> str:
        """Mirror ``pad`` pixels on every side of H and W (torch's ``ReflectionPad2d``)."""
        pads = self.weight([0, 0, pad, pad, 0, 0, pad, pad], np.int64)
        return self.node("Pad", [x, pads], mode="reflect")

    def instance_norm(self, x: str, channels: int, eps: float = 1e-5) -> str:
        """Normalise each channel over H and W, without a learnt scale (``affine=False``)."""
        return self.node("InstanceNormalization", [x, self.weight(np.ones(channels)),
                                                   self.weight(np.zeros(channels))], epsilon=float(eps))

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def leaky_relu(self, x: str, slope: float) -> str:
        return self.node("LeakyRelu", [x], alpha=float(slope))

    def tanh(self, x: str) -> str:
        return self.node("Tanh", [x])

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.node("Mul", [a, b])

    def scale_shift(self, x: str, scale: float, shift: float) -> str:
        """``x * scale + shift`` (two nodes, as torch computes ``x * 2 - 1``)."""
        return self.node("Add", [self.node("Mul", [x, self.weight(np.float32(scale))]),
                                 self.weight(np.float32(shift))])

    def clip(self, x: str, low: float, high: float) -> str:
        return self.node("Clip", [x, self.weight(np.float32(low)), self.weight(np.float32(high))])

    def concat(self, parts, axis: int = 1) -> str:
        return self.node("Concat", list(parts), axis=axis)

    def linear(self, x: str, w, b) -> str:
        """``x @ w.T + b`` for ``x`` (N, in), weights ``(out, in)`` as torch's ``Linear``."""
        return self.node("Gemm", [x, self.weight(w), self.weight(b)], transB=1)

    def global_mean(self, x: str) -> str:
        """``(N, C, H, W) -> (N, C)``: each channel's mean over the image."""
        return self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)

    def channels(self, x: str, parts: int) -> list:
        """``(N, parts * C) -> parts`` maps of ``(N, C, 1, 1)``, to scale or shift features."""
        shaped = self.node("Reshape", [x, self.weight([0, -1, 1, 1], np.int64)])
        return self.node("Split", [shaped], n_outputs=parts, axis=1)

    # -- the model --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as an ONNX file's bytes."""
        graph = (b"".join(_bytes_field(1, n) for n in self._nodes) + _bytes_field(2, "blursynth")
                 + b"".join(_bytes_field(5, w) for w in self._weights)
                 + b"".join(_bytes_field(11, i) for i in self._inputs)
                 + b"".join(_bytes_field(12, o) for o in self._outputs))
        opset = _bytes_field(1, "") + _int_field(2, OPSET)
        return (_int_field(1, _IR_VERSION) + _bytes_field(2, "blursynth") + _bytes_field(7, graph)
                + _bytes_field(8, opset))

    def session(self):
        """An ONNX Runtime session of the model on the CPU, one thread.

        Raises
        ------
        ImportError
            ONNX Runtime is not installed.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: a failure reaches the caller as an exception
        return ort.InferenceSession(self.to_bytes(), options, providers=["CPUExecutionProvider"])
