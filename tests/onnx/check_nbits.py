#!/usr/bin/env python3
"""Check squant's MatMulNBits output (packing=matmulnbits) of nbits.onnx.

  check_nbits.py NB.onnx CODES.safetensors ORT.json DEQ.onnx NBD.onnx GROUP
  check_nbits.py --agree ORT.json NB.onnx DEQ.onnx

The second form (any model): NB has MatMulNBits nodes, and ONNX Runtime's
outputs of NB and DEQ agree within float rounding.

NB is `squant quantize --packing matmulnbits -g GROUP`, CODES the same with
`--format safetensors` (codes [N, K], scales and zero points [N, G] in the
core's layout), DEQ `--dequantized`, NBD `squant dequantize NB`. ORT.json
holds ONNX Runtime's outputs of NB, DEQ and NBD (run.js). Checks: every
MatMul weight read only by MatMul nodes became com.microsoft MatMulNBits
(K, N, bits 4, block_size GROUP) with B = codes + 8 two per byte along K and
the last block padded with zeros, the scales, and the zero points + 8 (UINT8
two per byte when they fit 0...15, else FLOAT); w4.w, also a graph output,
kept its QDQ form; com.microsoft is imported; ONNX Runtime runs NB with the
outputs of DEQ (within float rounding: it multiplies in another order); NBD
has MatMul again with DEQ's weights bit for bit, and the same outputs.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnxpb as pb  # noqa: E402
from check import fail, safetensors  # noqa: E402


def attr_i(node, name):
    return node["attrs"][name][3][0]


def agree(ort, a, b):
    for out in ort[b]:
        top = max(abs(x) for x in ort[b][out]) or 1.0
        err = max(abs(x - y) for x, y in zip(ort[a][out], ort[b][out]))
        if err > 1e-5 * top:
            fail("ONNX Runtime: %s of %s is %g off %s's (max %g)" % (out, a, err, b, top))


def main():
    if sys.argv[1] == "--agree":
        ort_path, nb_path, deq_path = sys.argv[2:5]
        n = sum(x["op"] == "MatMulNBits" for x in pb.Model(open(nb_path, "rb").read()).nodes)
        if n == 0:
            fail("%s has no MatMulNBits" % nb_path)
        agree(json.load(open(ort_path)), nb_path, deq_path)
        print("%d MatMulNBits; ONNX Runtime's outputs agree with the dequantized model's" % n)
        return
    nb_path, st_path, ort_path, deq_path, nbd_path, group = sys.argv[1:7]
    g = int(group)
    nb = pb.Model(open(nb_path, "rb").read())
    st, _ = safetensors(st_path)
    if nb.opset.get("com.microsoft") != 1:
        fail("com.microsoft is not imported at version 1: %r" % nb.opset)
    nbits = [n for n in nb.nodes if n["op"] == "MatMulNBits"]
    if any(n["domain"] != "com.microsoft" for n in nbits):
        fail("a MatMulNBits outside com.microsoft")
    by_weight = {}
    for n in nbits:
        by_weight.setdefault(n["in"][1][:-len("_quantized")], []).append(n)
    if sorted(by_weight) != ["w1.w", "w2.w", "w3.w"] or len(by_weight["w3.w"]) != 2:
        fail("MatMulNBits for %r, expected w1.w, w2.w and w3.w (twice)" % sorted(by_weight))
    if [n for n in nb.nodes if n["op"] == "MatMul"] != [] and \
            [n["in"][1] for n in nb.nodes if n["op"] == "MatMul"] != ["w4.w"]:
        fail("MatMul nodes left: %r" % [n["in"] for n in nb.nodes if n["op"] == "MatMul"])
    if nb.tensor("w4.w") or not nb.producer("w4.w") or nb.producer("w4.w")["op"] not in ("DequantizeLinear", "Mul"):
        fail("w4.w (also a graph output) is not written in a QDQ form")
    zp_types = {}
    for name, nodes in sorted(by_weight.items()):
        shape, codes = st[name]
        N, K = shape
        G = (K + g - 1) // g
        _, scale = st[name + ".scale"]
        _, zp = st[name + ".zero_point"]
        n = nodes[0]
        if (attr_i(n, "K"), attr_i(n, "N"), attr_i(n, "bits"), attr_i(n, "block_size")) != (K, N, 4, g):
            fail("%s: K, N, bits, block_size %r" % (name, [attr_i(n, a) for a in ("K", "N", "bits", "block_size")]))
        b, s, z = nb.tensor(n["in"][1]), nb.tensor(n["in"][2]), nb.tensor(n["in"][3])
        if b.dims != [N, G, g // 2] or b.dtype != 2:
            fail("%s: B is %r of type %d" % (name, b.dims, b.dtype))
        bv = b.values()
        for c in range(N):
            for j in range(G):
                blk = bv[(c * G + j) * (g // 2):(c * G + j + 1) * (g // 2)]
                nib = [x for byte in blk for x in (byte & 15, byte >> 4)]
                for i in range(g):
                    k = j * g + i
                    want = codes[c * K + k] + 8 if k < K else 0
                    if nib[i] != want:
                        fail("%s: B[%d, %d] holds %d, expected %d" % (name, c, k, nib[i], want))
        if s.values() != scale:
            fail("%s: the scales differ" % name)
        if z.dtype == 2:
            half = (G + 1) // 2
            zv = z.values()
            got = [(zv[c * half + j // 2] >> (4 * (j % 2))) & 15 for c in range(N) for j in range(G)]
        else:
            got = z.values()
        if got != [x + 8 for x in zp]:
            fail("%s: zero points %r, expected %r" % (name, got[:8], [x + 8 for x in zp][:8]))
        zp_types[name] = "UINT8" if z.dtype == 2 else "FLOAT"
        for other in nodes[1:]:
            if other["in"][1:] != n["in"][1:]:
                fail("%s: its MatMulNBits nodes read different inputs" % name)
    # w1.w's output channel 0 is all positive: its zero point is beyond 0...15.
    if zp_types != {"w1.w": "FLOAT", "w2.w": "UINT8", "w3.w": "UINT8"}:
        fail("zero point types %r" % zp_types)
    ort = json.load(open(ort_path))
    agree(ort, nb_path, deq_path)
    d, back = ort[deq_path], ort[nbd_path]
    for out in d:
        if back[out] != d[out]:
            fail("ONNX Runtime: %s of the folded-back model differs from the dequantized one" % out)
    deq = pb.Model(open(deq_path, "rb").read())
    nbd = pb.Model(open(nbd_path, "rb").read())
    if any(n["op"] == "MatMulNBits" for n in nbd.nodes):
        fail("squant dequantize left a MatMulNBits")
    for name in ("w1.w", "w2.w", "w3.w", "w4.w"):
        a, b = deq.tensor(name), nbd.tensor(name)
        if b is None or a.dims != b.dims or a.raw != b.raw:
            fail("squant dequantize: %s is not the dequantized weight bit for bit" % name)
    print("MatMulNBits (block %d): %s; zero points %s" % (
        g, " ".join(sorted(by_weight)), " ".join("%s %s" % kv for kv in sorted(zp_types.items()))))


if __name__ == "__main__":
    main()
