"""What a quantized model computes on other CPUs, emulated on this one.

onnxruntime offers no switch to choose the instruction set of its int8 kernels (MLAS picks it
from the CPU at start-up; no session option or environment variable selects another), so
another CPU's answers cannot be *run* here. What can be reproduced:

``exact`` (VNNI, AMX, ARM dot product: int8 products summed exactly in int32)
    A QDQ model run with graph optimizations off executes its QuantizeLinear/DequantizeLinear
    nodes as written and multiplies in float: the quantized model's arithmetic with no
    integer kernel at all, the same on every machine.
    Dynamic int8 (``MatMulInteger``) runs its integer kernel even with optimizations off, so
    :func:`integer_model` rewrites those MatMuls as exact float ops first.
``avx2`` (x86 without VNNI, U8S8)
    ``vpmaddubsw`` adds pairs of uint8×int8 products into *saturating* int16 before summing
    in int32. :func:`saturation_risk` bounds, from the weights alone, how many weight columns
    can saturate; :func:`avx2_model` rewrites each quantized MatMul/Gemm (QDQ) and
    MatMulInteger (dynamic) with that pairwise saturation, assuming MLAS's packing of
    consecutive k pairs.
not emulated
    GPU kernels (CUDA/TensorRT fp16 and int8), ConvInteger/QLinearConv, and the requantization
    rounding of fused kernels (a few units in the last place of the uint8 output scale).
"""

from __future__ import annotations

import numpy as np

INT16_MAX, INT16_MIN = 32767, -32768


def exact_session(content: bytes, threads: int = 1):
    """A CPU session that runs the model's Q/DQ nodes as written (no fused integer kernels)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(content, sess_options=options, providers=["CPUExecutionProvider"])


def _initializers(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def quantized_layers(model) -> list[dict]:
    """Every MatMul/Gemm of a QDQ model whose both inputs come from DequantizeLinear.

    Each entry: node name, the activation DQ's uint8/int8 dtype and the int8 weight matrix
    oriented [K, M] (the layout the int8 kernel multiplies).
    """
    inits = _initializers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    layers = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        a, b = (producers.get(node.input[i]) for i in (0, 1))
        if a is None or b is None or a.op_type != "DequantizeLinear" or b.op_type != "DequantizeLinear":
            continue
        w = inits.get(b.input[0])
        if w is None or w.ndim != 2:
            continue
        trans_b = any(at.name == "transB" and at.i == 1 for at in node.attribute)
        act = a.input[0]
        act_dtype = None
        a_producer = producers.get(act)
        if a_producer is not None and a_producer.op_type == "QuantizeLinear" and len(a_producer.input) > 2:
            zp = inits.get(a_producer.input[2])
            act_dtype = None if zp is None else str(zp.dtype)
        layers.append({"node": node.name, "weights": w.T if trans_b else w, "activation_dtype": act_dtype})
    return layers


def saturation_risk(model_or_bytes) -> dict:
    """Weight columns whose uint8×int8 pair sums can leave int16 (AVX2 U8S8), per layer.

    A pair (w[k], w[k+1]) saturates when uint8 activations near 255 meet same-signed weights
    with ``255·(|w[k]|+|w[k+1]|) > 32767``; 7-bit weights (``reduce_range``) never can.
    int8 activations (S8S8) count too: on x86 they are assumed shifted into the U8S8 kernel.
    """
    import onnx

    model = (
        onnx.load_model_from_string(model_or_bytes) if isinstance(model_or_bytes, bytes) else model_or_bytes
    )
    layers = []
    inits = _initializers(model)
    dynamic = [
        {"node": n.name, "weights": inits[n.input[1]]}
        for n in model.graph.node
        if n.op_type == "MatMulInteger" and n.input[1] in inits and inits[n.input[1]].ndim == 2
    ]
    for layer in quantized_layers(model) + dynamic:
        w = layer["weights"].astype(np.int32)
        if w.shape[0] % 2:
            w = np.vstack([w, np.zeros((1, w.shape[1]), np.int32)])
        pos = np.clip(w, 0, None).reshape(-1, 2, w.shape[1]).sum(axis=1) * 255
        neg = np.clip(w, None, 0).reshape(-1, 2, w.shape[1]).sum(axis=1) * 255
        risky = ((pos > INT16_MAX) | (neg < INT16_MIN)).any(axis=0)
        layers.append(
            {"node": layer["node"], "columns": int(w.shape[1]), "columns_at_risk": int(risky.sum())}
        )
    at_risk = sum(x["columns_at_risk"] for x in layers)
    return {"layers": layers, "columns_at_risk": at_risk, "possible": at_risk > 0}


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return a.i if a.type == a.INT else a.f
    return default


def avx2_model(content: bytes, *, saturate: bool = True) -> tuple[bytes, list[str]]:
    """A copy of a QDQ model whose quantized MatMul/Gemm compute as the AVX2 U8S8 kernel does.

    Each layer becomes: raw uint8 activations × int8 weights, summed in pairs of consecutive k
    and clipped to int16, the pairs summed, the activation zero point's share removed, then
    scaled back to float. int8 activations are shifted by +128 first (as if converted to
    uint8: the conservative assumption). Run it with :func:`exact_session`. Returns (model
    bytes, emulated layer names). Layers it cannot rewrite (non-zero weight zero points, Gemm
    with alpha/beta/transA, per-channel activations) are left exact. Dynamic int8's
    ``MatMulInteger`` is rewritten the same way; with ``saturate=False`` it is rewritten without
    the int16 clip, which gives dynamic models an exact (kernel-free) session too.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(content)
    inits = _initializers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    new_nodes, new_inits, emulated = [], [], []
    for node in model.graph.node:
        rewritten = None
        if node.op_type in ("MatMul", "Gemm"):
            rewritten = _rewrite_layer(node, producers, inits, helper, numpy_helper)
        elif node.op_type == "MatMulInteger":
            rewritten = _rewrite_matmul_integer(node, inits, helper, numpy_helper, saturate=saturate)
        if rewritten is None:
            new_nodes.append(node)
            continue
        nodes, tensors = rewritten
        new_nodes.extend(nodes)
        new_inits.extend(tensors)
        emulated.append(node.name)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    model.graph.initializer.extend(new_inits)
    return model.SerializeToString(), emulated


def _rewrite_layer(node, producers, inits, helper, numpy_helper):
    a, b = (producers.get(node.input[i]) for i in (0, 1))
    if a is None or b is None or a.op_type != "DequantizeLinear" or b.op_type != "DequantizeLinear":
        return None
    if node.op_type == "Gemm" and (
        _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0 or _attr(node, "transA", 0)
    ):
        return None
    w = inits.get(b.input[0])
    zx = inits.get(a.input[2]) if len(a.input) > 2 else None
    sx = inits.get(a.input[1])
    sw = inits.get(b.input[1])
    zw = inits.get(b.input[2]) if len(b.input) > 2 else None
    if w is None or w.ndim != 2 or sx is None or sw is None or sx.size != 1:
        return None
    if zx is None or zx.dtype not in (np.uint8, np.int8) or (zw is not None and np.any(zw != 0)):
        return None
    # int8 activations (S8S8) on x86 without VNNI: assumed shifted by +128 into the U8S8 kernel
    # (the conservative reading: the same saturation hazard as uint8).
    shift = 128.0 if zx.dtype == np.int8 else 0.0
    if node.op_type == "Gemm" and _attr(node, "transB", 0):
        w = w.T
    k, m = w.shape
    wi = w.astype(np.int64)
    if k % 2:
        wi = np.vstack([wi, np.zeros((1, m), np.int64)])
    pairs = wi.reshape(-1, 2, m).astype(np.float32)  # [K/2, 2, M]
    scale = (float(sx) * sw.astype(np.float64).reshape(-1)).astype(np.float32)  # [M] or [1]
    offset = ((float(zx) + shift) * wi.sum(axis=0)).astype(np.float32)  # zero point's share, per column
    p = f"{node.name}__avx2"
    tensors = [
        numpy_helper.from_array(pairs, f"{p}_w"),
        numpy_helper.from_array(np.array([0, -1, 2], np.int64), f"{p}_shape"),
        numpy_helper.from_array(np.array(INT16_MIN, np.float32), f"{p}_lo"),
        numpy_helper.from_array(np.array(INT16_MAX, np.float32), f"{p}_hi"),
        numpy_helper.from_array(np.array([1], np.int64), f"{p}_axis"),
        numpy_helper.from_array(offset, f"{p}_offset"),
        numpy_helper.from_array(scale, f"{p}_scale"),
    ]
    xq = a.input[0]
    x = xq
    nodes = [helper.make_node("Cast", [x], [f"{p}_xf"], to=1, name=f"{p}_cast")]
    src = f"{p}_xf"
    if shift:
        tensors.append(numpy_helper.from_array(np.array(shift, np.float32), f"{p}_shift"))
        nodes.append(helper.make_node("Add", [src, f"{p}_shift"], [f"{p}_xu"], name=f"{p}_to_u8"))
        src = f"{p}_xu"
    if k % 2:
        tensors.append(numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), f"{p}_pad"))
        nodes.append(helper.make_node("Pad", [src, f"{p}_pad"], [f"{p}_xp"], name=f"{p}_padk"))
        src = f"{p}_xp"
    out = node.output[0]
    nodes += [
        helper.make_node("Reshape", [src, f"{p}_shape"], [f"{p}_x3"], name=f"{p}_reshape"),
        helper.make_node(
            "Einsum", [f"{p}_x3", f"{p}_w"], [f"{p}_pairs"], equation="nkt,ktm->nkm", name=f"{p}_pairsum"
        ),
        helper.make_node("Clip", [f"{p}_pairs", f"{p}_lo", f"{p}_hi"], [f"{p}_sat"], name=f"{p}_int16"),
        helper.make_node("ReduceSum", [f"{p}_sat", f"{p}_axis"], [f"{p}_acc"], keepdims=0, name=f"{p}_int32"),
        helper.make_node("Sub", [f"{p}_acc", f"{p}_offset"], [f"{p}_centered"], name=f"{p}_zp"),
    ]
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        nodes.append(helper.make_node("Mul", [f"{p}_centered", f"{p}_scale"], [f"{p}_mm"], name=f"{p}_dq"))
        nodes.append(helper.make_node("Add", [f"{p}_mm", node.input[2]], [out], name=f"{p}_bias"))
    else:
        nodes.append(helper.make_node("Mul", [f"{p}_centered", f"{p}_scale"], [out], name=f"{p}_dq"))
    return nodes, tensors


def _rewrite_matmul_integer(node, inits, helper, numpy_helper, *, saturate: bool):
    """MatMulInteger(A uint8, B int8 weights) as float ops: exact int32, or AVX2's int16 pairs."""
    w = inits.get(node.input[1])
    if w is None or w.ndim != 2 or w.dtype != np.int8:
        return None
    zw = inits.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if zw is not None and np.any(zw != 0):
        return None
    k, m = w.shape
    wi = w.astype(np.int64)
    if k % 2:
        wi = np.vstack([wi, np.zeros((1, m), np.int64)])
    p = f"{node.name or node.output[0]}__int"
    tensors = [
        numpy_helper.from_array(wi.reshape(-1, 2, m).astype(np.float32), f"{p}_w"),
        numpy_helper.from_array(wi.sum(axis=0).astype(np.float32), f"{p}_colsum"),
        numpy_helper.from_array(np.array([0, -1, 2], np.int64), f"{p}_shape"),
        numpy_helper.from_array(np.array(INT16_MIN, np.float32), f"{p}_lo"),
        numpy_helper.from_array(np.array(INT16_MAX, np.float32), f"{p}_hi"),
        numpy_helper.from_array(np.array([1], np.int64), f"{p}_axis"),
    ]
    nodes = [helper.make_node("Cast", [node.input[0]], [f"{p}_af"], to=1, name=f"{p}_cast")]
    src = f"{p}_af"
    if k % 2:
        tensors.append(numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), f"{p}_pad"))
        nodes.append(helper.make_node("Pad", [src, f"{p}_pad"], [f"{p}_ap"], name=f"{p}_padk"))
        src = f"{p}_ap"
    nodes += [
        helper.make_node("Reshape", [src, f"{p}_shape"], [f"{p}_a3"], name=f"{p}_reshape"),
        helper.make_node(
            "Einsum", [f"{p}_a3", f"{p}_w"], [f"{p}_pairs"], equation="nkt,ktm->nkm", name=f"{p}_pairsum"
        ),
    ]
    pairs = f"{p}_pairs"
    if saturate:
        nodes.append(helper.make_node("Clip", [pairs, f"{p}_lo", f"{p}_hi"], [f"{p}_sat"], name=f"{p}_int16"))
        pairs = f"{p}_sat"
    nodes.append(
        helper.make_node("ReduceSum", [pairs, f"{p}_axis"], [f"{p}_acc"], keepdims=0, name=f"{p}_sum")
    )
    acc = f"{p}_acc"
    if len(node.input) > 2 and node.input[2]:  # the activation zero point's share, per column
        nodes += [
            helper.make_node("Cast", [node.input[2]], [f"{p}_zf"], to=1, name=f"{p}_zcast"),
            helper.make_node("Mul", [f"{p}_zf", f"{p}_colsum"], [f"{p}_zshare"], name=f"{p}_zmul"),
            helper.make_node("Sub", [acc, f"{p}_zshare"], [f"{p}_centered"], name=f"{p}_zsub"),
        ]
        acc = f"{p}_centered"
    nodes.append(helper.make_node("Cast", [acc], [node.output[0]], to=6, name=f"{p}_int32"))
    return nodes, tensors


def integer_model(content: bytes) -> bytes:
    """A dynamic int8 model whose MatMulInteger run as exact float ops (no integer kernel)."""
    return avx2_model(content, saturate=False)[0]


# Where each target's answers come from in `verify --all-targets`.
TARGET_EMULATION = {
    "avx512-vnni": "exact int32 arithmetic (Q/DQ as written; VNNI/AMX sum products exactly)",
    "arm64": "exact int32 arithmetic (Q/DQ as written; the ARM dot product sums exactly)",
    "avx2": "uint8×int8 pairs clipped to int16 (vpmaddubsw), as MLAS's AVX2 U8S8 kernel",
}
NOT_EMULATED = {
    "gpu": "CUDA/TensorRT kernels cannot be run or emulated on a CPU: verify on a GPU executor",
}


def target_sessions(content: bytes, threads: int = 1) -> tuple[dict, dict]:
    """({target: session}, {target or topic: why not emulated}) for ``verify --all-targets``."""
    import onnx

    proto = onnx.load_model_from_string(content)
    ops = {n.op_type for n in proto.graph.node}
    skipped = {"gpu": NOT_EMULATED["gpu"]}
    if "MatMulInteger" in ops:  # dynamic int8: rewrite the integer MatMuls (DISABLE_ALL still runs them)
        exact = exact_session(integer_model(content), threads)
        return {
            "avx512-vnni": exact,
            "arm64": exact,
            "avx2": exact_session(avx2_model(content)[0], threads),
        }, skipped
    if not quantized_layers(proto):
        skipped["int8"] = "no quantized MatMul/Gemm: float kernels, the same on every CPU up to rounding"
    sessions = {"avx512-vnni": exact_session(content, threads), "arm64": None, "avx2": None}
    sessions["arm64"] = sessions["avx512-vnni"]
    emulated, layers = avx2_model(content)
    sessions["avx2"] = exact_session(emulated, threads)
    if not layers and quantized_layers(proto):
        skipped["avx2"] = "no layer matched the U8S8 pattern: run exact"
    return sessions, skipped
