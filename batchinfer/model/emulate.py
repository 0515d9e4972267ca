"""What a quantized model computes on other CPUs, emulated on this one.

onnxruntime offers no switch to choose the instruction set of its int8 kernels (MLAS picks it
from the CPU at start-up; no session option or environment variable selects another), so
another CPU's answers cannot be *run* here. What can be reproduced:

``exact`` (VNNI, AMX, ARM dot product: int8 products summed exactly in int32)
    A QDQ model run with graph optimizations off executes its QuantizeLinear/DequantizeLinear
    nodes as written and multiplies in float: the quantized model's arithmetic with no
    integer kernel at all, the same on every machine.
``avx2`` (x86 without VNNI, U8S8)
    ``vpmaddubsw`` adds pairs of uint8×int8 products into *saturating* int16 before summing
    in int32. :func:`saturation_risk` bounds, from the weights alone, how many weight columns
    can saturate; :func:`emulate_avx2` recomputes each quantized MatMul/Gemm of a QDQ model
    with that pairwise saturation (numpy), assuming MLAS's packing of consecutive k pairs.
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
    Layers with int8 activations (S8S8) are not run by the U8S8 kernel and are skipped.
    """
    import onnx

    model = (
        onnx.load_model_from_string(model_or_bytes) if isinstance(model_or_bytes, bytes) else model_or_bytes
    )
    layers = []
    for layer in quantized_layers(model):
        if layer["activation_dtype"] not in (None, "uint8"):
            continue
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
