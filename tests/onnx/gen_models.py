#!/usr/bin/env python3
"""Write the ONNX test models into DIR (no onnx/torch needed).

  ops13.onnx     opset 13, initializers: Conv with groups, ConvTranspose
                 (grouped and not), Gemm with transB 1 and 0, MatMul [K, N],
                 and a weight shared by MatMul and Gemm(transB=1) (axes
                 disagree: it must stay float)
  opset9.onnx    opset 9, weights in Constant nodes (raw_data and float_data),
                 Conv, MatMul [K, N], Gemm transB=0 (as Paddle exports)
  external.onnx  opset 13, weights in external data (external.bin)
  ops21.onnx     ops13.onnx's graph at opset 21 (INT4 DequantizeLinear)
  groups13.onnx  Conv 3x3 and 1x1, Gemm (both transB), MatMul with input dims
  groups21.onnx  8, 6, 12, 10, 9 (group-wise output), at opset 13 and 21
  fp16.onnx      FLOAT16/BFLOAT16/DOUBLE weights in typed fields (parser only)
  half.onnx      opset 17, FLOAT16 MatMul weights and a DOUBLE Gemm weight between
                 Casts (a model ONNX Runtime runs; fp16.onnx is for the parser)
  nbits.onnx     opset 17, an LLM-shaped MatMul chain on [2, 3, 64] (K 64, 96,
                 40): for MatMulNBits; w1.w's column 0 is all positive (a zero
                 point beyond 0...15), w3.w is read by two MatMuls, w4.w also
                 by an Identity (a graph output: it must stay QDQ)
  resnet14.onnx  the example model (examples/fmnist-resnet14.safetensors,
                 given as the second argument) as an ONNX graph: a BN-folded
                 ResNet of basic blocks, as torch.onnx.export writes it
"""
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnxpb as pb  # noqa: E402


def weights(rng, n, lo=-1.0, hi=1.0):
    return [rng.uniform(lo, hi) for _ in range(n)]


def raw(vals):
    return struct.pack("<%df" % len(vals), *vals)


def ops13(rng, opset=13, ir=7):
    inits, nodes = [], []

    def init(name, dims, vals=None):
        n = 1
        for d in dims:
            n *= d
        vals = vals if vals is not None else weights(rng, n)
        inits.append(pb.tensor(name, dims, raw=raw(vals)))

    init("conv.w", [6, 2, 3, 3])
    init("conv.b", [6])
    nodes.append(pb.node("Conv", ["x", "conv.w", "conv.b"], ["c1"],
                         [pb.attr_int("group", 2), pb.attr_ints("pads", [1, 1, 1, 1])], "conv"))
    nodes.append(pb.node("Relu", ["c1"], ["r1"]))
    init("convt.w", [6, 2, 2, 2])  # group 2: C_in 6, C_out 4
    nodes.append(pb.node("ConvTranspose", ["r1", "convt.w"], ["c2"],
                         [pb.attr_int("group", 2), pb.attr_ints("strides", [2, 2])], "convt"))
    init("convt1.w", [4, 3, 1, 1])  # group 1: output channels on axis 1
    nodes.append(pb.node("ConvTranspose", ["c2", "convt1.w"], ["c3"], [], "convt1"))
    nodes.append(pb.node("GlobalAveragePool", ["c3"], ["p"]))
    nodes.append(pb.node("Flatten", ["p"], ["f"]))
    # Channel 0 all positive: its zero point is far outside int8.
    g1 = weights(rng, 3, 0.5, 1.0) + weights(rng, 12)
    init("fc1.w", [5, 3], g1)
    init("fc1.b", [5])
    nodes.append(pb.node("Gemm", ["f", "fc1.w", "fc1.b"], ["g1"], [pb.attr_int("transB", 1)], "fc1"))
    init("fc2.w", [5, 7])
    nodes.append(pb.node("Gemm", ["g1", "fc2.w"], ["g2"], [pb.attr_int("transB", 0)], "fc2"))
    init("mm.w", [7, 6])
    nodes.append(pb.node("MatMul", ["g2", "mm.w"], ["m1"], [], "mm"))
    init("shared.w", [6, 6])
    nodes.append(pb.node("MatMul", ["m1", "shared.w"], ["m2"], [], "mm2"))
    nodes.append(pb.node("Gemm", ["m2", "shared.w"], ["y"], [pb.attr_int("transB", 1)], "fc3"))
    g = pb.graph(nodes, "ops13", inits, [pb.value_info("x", [1, 4, 8, 8])],
                 [pb.value_info("y", [1, 6])])
    return pb.model(g, opset, ir, [("author", "squant tests")])


def groups(rng, opset):
    """Input dims that groups of 3 or 4 cut evenly and not (group-wise output)."""
    inits, nodes = [], []

    def init(name, dims):
        n = 1
        for d in dims:
            n *= d
        inits.append(pb.tensor(name, dims, raw=raw(weights(rng, n))))

    init("conv.w", [6, 8, 3, 3])  # I 8
    nodes.append(pb.node("Conv", ["x", "conv.w"], ["c1"], [pb.attr_ints("pads", [1, 1, 1, 1])], "conv"))
    nodes.append(pb.node("Relu", ["c1"], ["r1"]))
    init("pw.w", [12, 6, 1, 1])  # I 6
    nodes.append(pb.node("Conv", ["r1", "pw.w"], ["c2"], [], "pw"))
    nodes.append(pb.node("GlobalAveragePool", ["c2"], ["p"]))
    nodes.append(pb.node("Flatten", ["p"], ["f"]))
    init("fc1.w", [10, 12])  # transB 1: I 12
    nodes.append(pb.node("Gemm", ["f", "fc1.w"], ["g1"], [pb.attr_int("transB", 1)], "fc1"))
    init("fc2.w", [10, 9])  # [K, N]: K 10
    nodes.append(pb.node("Gemm", ["g1", "fc2.w"], ["g2"], [pb.attr_int("transB", 0)], "fc2"))
    init("mm.w", [9, 5])  # [K, N]: K 9
    nodes.append(pb.node("MatMul", ["g2", "mm.w"], ["y"], [], "mm"))
    g = pb.graph(nodes, "groups", inits, [pb.value_info("x", [1, 8, 6, 6])],
                 [pb.value_info("y", [1, 5])])
    return pb.model(g, opset, 7 if opset < 21 else 10, [("author", "squant tests")])


def half(rng):
    def f16(vals):
        return [struct.unpack("<H", struct.pack("<e", v))[0] for v in vals]

    inits = [pb.tensor("h1.w", [8, 16], pb.FLOAT16, int32s=f16(weights(rng, 128))),
             pb.tensor("h2.w", [16, 4], pb.FLOAT16, int32s=f16(weights(rng, 64))),
             pb.tensor("d.w", [4, 8], pb.DOUBLE, doubles=weights(rng, 32))]
    nodes = [pb.node("Cast", ["x"], ["xh"], [pb.attr_int("to", pb.FLOAT16)]),
             pb.node("MatMul", ["xh", "h1.w"], ["m1"], [], "mm1"),
             pb.node("Relu", ["m1"], ["r1"]),
             pb.node("MatMul", ["r1", "h2.w"], ["m2"], [], "mm2"),
             pb.node("Cast", ["m2"], ["y"], [pb.attr_int("to", pb.FLOAT)]),
             pb.node("Cast", ["x"], ["xd"], [pb.attr_int("to", pb.DOUBLE)]),
             pb.node("Gemm", ["xd", "d.w"], ["g"], [pb.attr_int("transB", 1)], "fc"),
             pb.node("Cast", ["g"], ["y2"], [pb.attr_int("to", pb.FLOAT)])]
    g = pb.graph(nodes, "half", inits, [pb.value_info("x", [3, 8])],
                 [pb.value_info("y", [3, 4]), pb.value_info("y2", [3, 4])])
    return pb.model(g, 17, 8, [("author", "squant tests")])


def nbits(rng):
    inits, nodes = [], []

    def init(name, dims, vals=None):
        n = dims[0] * dims[1]
        inits.append(pb.tensor(name, dims, raw=raw(vals if vals is not None else weights(rng, n))))

    w1 = weights(rng, 64 * 96)
    for k in range(64):
        w1[k * 96] = rng.uniform(0.5, 1.0)  # column 0 (output channel 0) all positive
    init("w1.w", [64, 96], w1)
    nodes.append(pb.node("MatMul", ["x", "w1.w"], ["m1"], [], "mm1"))
    nodes.append(pb.node("Relu", ["m1"], ["r1"]))
    init("w2.w", [96, 40])
    nodes.append(pb.node("MatMul", ["r1", "w2.w"], ["m2"], [], "mm2"))
    init("w3.w", [40, 40])
    nodes.append(pb.node("MatMul", ["m2", "w3.w"], ["m3"], [], "mm3"))
    nodes.append(pb.node("MatMul", ["m3", "w3.w"], ["m4"], [], "mm4"))
    init("w4.w", [40, 24])
    nodes.append(pb.node("MatMul", ["m4", "w4.w"], ["y"], [], "mm5"))
    nodes.append(pb.node("Identity", ["w4.w"], ["w4.copy"], [], "copy"))
    g = pb.graph(nodes, "nbits", inits, [pb.value_info("x", [2, 3, 64])],
                 [pb.value_info("y", [2, 3, 24]), pb.value_info("w4.copy", [40, 24])])
    return pb.model(g, 17, 8, [("author", "squant tests")])


def opset9(rng):
    nodes = []

    def const(name, dims, typed=False):
        n = 1
        for d in dims:
            n *= d
        vals = weights(rng, n)
        t = pb.tensor(None, dims, floats=vals) if typed else pb.tensor(None, dims, raw=raw(vals))
        nodes.append(pb.node("Constant", [], [name], [pb.attr_tensor("value", t)]))

    const("conv2d_0.w_0", [4, 3, 3, 3])
    nodes.append(pb.node("Conv", ["x", "conv2d_0.w_0"], ["c"],
                         [pb.attr_ints("pads", [1, 1, 1, 1]), pb.attr_ints("strides", [1, 1])]))
    nodes.append(pb.node("Relu", ["c"], ["r"]))
    nodes.append(pb.node("GlobalAveragePool", ["r"], ["p"]))
    nodes.append(pb.node("Flatten", ["p"], ["f"], [pb.attr_int("axis", 1)]))
    const("linear_0.w_0", [4, 5], typed=True)
    nodes.append(pb.node("MatMul", ["f", "linear_0.w_0"], ["m"]))
    const("fc_0.w_0", [5, 3])
    const("fc_0.b_0", [3])
    nodes.append(pb.node("Gemm", ["m", "fc_0.w_0", "fc_0.b_0"], ["y"]))
    g = pb.graph(nodes, "paddle-like", [], [pb.value_info("x", [1, 3, 8, 8])],
                 [pb.value_info("y", [1, 3])])
    return pb.model(g, 9, 4)


def external(rng, d):
    a = weights(rng, 4 * 3 * 3 * 3)
    b = weights(rng, 5 * 4)
    blob = raw(a) + b"\0" * 12 + raw(b)
    with open(os.path.join(d, "external.bin"), "wb") as f:
        f.write(blob)
    inits = [
        pb.tensor("conv.w", [4, 3, 3, 3], ext=[("location", "external.bin"), ("offset", 0),
                                             ("length", 4 * len(a))]),
        pb.tensor("fc.w", [5, 4], ext=[("location", "external.bin"),
                                      ("offset", 4 * len(a) + 12), ("length", 4 * len(b))]),
    ]
    nodes = [
        pb.node("Conv", ["x", "conv.w"], ["c"], [pb.attr_ints("pads", [1, 1, 1, 1])]),
        pb.node("GlobalAveragePool", ["c"], ["p"]),
        pb.node("Flatten", ["p"], ["f"]),
        pb.node("Gemm", ["f", "fc.w"], ["y"], [pb.attr_int("transB", 1)]),
    ]
    g = pb.graph(nodes, "external", inits, [pb.value_info("x", [1, 3, 8, 8])],
                 [pb.value_info("y", [1, 5])])
    return pb.model(g, 13, 8)


def fp16(rng):
    def bits16(v, bf):
        if bf:
            return struct.unpack("<I", struct.pack("<f", v))[0] >> 16
        return struct.unpack("<H", struct.pack("<e", v))[0]

    h = [bits16(v, False) for v in weights(rng, 4 * 2)]
    bf = [bits16(v, True) for v in weights(rng, 4 * 2)]
    dd = weights(rng, 4 * 2)
    inits = [pb.tensor("h.w", [4, 2], pb.FLOAT16, int32s=h),
             pb.tensor("bf.w", [2, 4], pb.BFLOAT16, int32s=bf),
             pb.tensor("d.w", [4, 2], pb.DOUBLE, doubles=dd)]
    nodes = [pb.node("Gemm", ["x", "h.w"], ["a"], [pb.attr_int("transB", 1)]),
             pb.node("MatMul", ["x", "bf.w"], ["b"]),
             pb.node("Gemm", ["x", "d.w"], ["c"], [pb.attr_int("transB", 1)])]
    g = pb.graph(nodes, "fp16", inits, [pb.value_info("x", [1, 2])], [pb.value_info("a", [1, 4])])
    return pb.model(g, 13, 7)


def resnet14(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    inits = []
    for k, v in h.items():
        s, e = v["data_offsets"]
        inits.append(pb.tensor(k, v["shape"], raw=b[8 + n + s:8 + n + e]))
    nodes = []

    def conv(x, w, out, stride=1, k=3):
        pad = k // 2
        nodes.append(pb.node("Conv", [x, w + ".weight", w + ".bias"], [out],
                             [pb.attr_ints("pads", [pad] * 4), pb.attr_ints("strides", [stride] * 2),
                              pb.attr_ints("kernel_shape", [k, k])], w))

    def relu(x, out):
        nodes.append(pb.node("Relu", [x], [out]))

    conv("x", "stem", "s0")
    relu("s0", "a0")
    x = "a0"
    for L in (1, 2, 3):
        for blk in (0, 1):
            p = "layer%d.%d" % (L, blk)
            stride = 2 if L > 1 and blk == 0 else 1
            conv(x, p + ".conv1", p + ".c1", stride)
            relu(p + ".c1", p + ".r1")
            conv(p + ".r1", p + ".conv2", p + ".c2")
            short = x
            if p + ".down.weight" in h:
                conv(x, p + ".down", p + ".d", stride, 1)
                short = p + ".d"
            nodes.append(pb.node("Add", [p + ".c2", short], [p + ".sum"]))
            relu(p + ".sum", p + ".out")
            x = p + ".out"
    nodes.append(pb.node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(pb.node("Flatten", ["pool"], ["flat"]))
    nodes.append(pb.node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], [pb.attr_int("transB", 1)], "fc"))
    g = pb.graph(nodes, "fmnist-resnet14", inits, [pb.value_info("x", [1, 1, 28, 28])],
                 [pb.value_info("logits", [1, 10])])
    return pb.model(g, 17, 8, [("model", "fmnist_resnet14_bnfolded")])


def main():
    d = sys.argv[1]
    if len(sys.argv) > 2:
        with open(os.path.join(d, "resnet14.onnx"), "wb") as f:
            f.write(resnet14(sys.argv[2]))
    os.makedirs(d, exist_ok=True)
    rng = random.Random(7)
    for name, data in (("ops13.onnx", ops13(rng)), ("opset9.onnx", opset9(rng)),
                       ("external.onnx", external(rng, d)), ("fp16.onnx", fp16(rng)),
                       ("ops21.onnx", ops13(random.Random(21), 21, 10)),
                       ("groups13.onnx", groups(random.Random(13), 13)),
                       ("groups21.onnx", groups(random.Random(21), 21)),
                       ("nbits.onnx", nbits(random.Random(4))),
                       ("half.onnx", half(random.Random(16)))):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
