"""``batchinfer model inspect | quantize | verify``.

Registration imports nothing heavy (``batchinfer --help`` stays instant); onnx and
onnxruntime are imported by the handlers. No command here loads pickles: exporting a
scikit-learn model is a Python API (:func:`batchinfer.model.export.export_sklearn`), run where
the estimator already lives (a notebook, a training job).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from batchinfer.errors import EXIT_OK, ConfigError, GateFailedError, OutputError

QUANTIZE_EPILOG = """\
examples:
  batchinfer model quantize m.onnx --method dynamic-int8 --out m.dyn.onnx
  batchinfer model quantize m.onnx --method static-int8 --config conf/job.yaml --out m.int8.onnx
  batchinfer model quantize m.onnx --method static-int8 --data data/events --columns f0,f1,f2 --out m.int8.onnx
  batchinfer model quantize m.onnx --method fp16 --out m.fp16.onnx     # for GPU executors
then always: batchinfer model verify OUT.onnx --reference m.onnx --config conf/job.yaml --label churned
"""

VERIFY_EPILOG = """\
Scores a sample of real rows with both models (the same input mapping the job uses) and
fails with exit code 5 when the candidate is over budget. Writes the result into the
candidate's model card (OUT.onnx.card.json); a job with `model.card:` only scores a model
whose card records a passed verification.
"""


def _add_mapping_args(p: argparse.ArgumentParser, *, rows_default: int, rows_help: str) -> None:
    g = p.add_argument_group("data and input mapping (as the job builds its tensors)")
    g.add_argument(
        "--config", metavar="JOB.yaml", help="take the input mapping (and data path) from a job config"
    )
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a job config value, e.g. --set input.partitions.ds=2026-11-28 (repeatable)",
    )
    g.add_argument("--env", help="job config environment overlay")
    g.add_argument(
        "--data", metavar="PARQUET", help="Parquet file or dataset root (overrides input.path of --config)"
    )
    g.add_argument(
        "--columns", metavar="F0,F1,...", help="with --data: float columns stacked into the one model input"
    )
    g.add_argument("--rows", type=int, default=rows_default, help=rows_help)
    g.add_argument("--seed", type=int, default=None, help="sampling seed")


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="inspect, quantize and verify ONNX models")
    model.set_defaults(handler=lambda args: _print_help(model))
    sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    ins = sub.add_parser("inspect", help="inputs, outputs, opset, producer, size and sha256 of a model")
    ins.add_argument("model", help="an .onnx file")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.add_argument("--nodes", action="store_true", help="also list graph nodes (names for --exclude-nodes)")
    ins.set_defaults(handler=cmd_inspect)

    q = sub.add_parser(
        "quantize",
        help="int8 / fp16 conversion; writes OUT and OUT.card.json",
        epilog=QUANTIZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("model", help="the fp32 .onnx model")
    q.add_argument("--method", required=True, choices=["dynamic-int8", "static-int8", "fp16"])
    q.add_argument("--out", required=True, metavar="OUT.onnx", help="where the converted model goes")
    q.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    q.add_argument("--card", metavar="PATH", help="model card path (default: OUT.onnx.card.json)")
    q.add_argument(
        "--target-cpu",
        choices=["auto", "avx2", "avx512-vnni", "arm64"],
        default="auto",
        help="int8 recipe for the executors' CPU: avx2 (x86 without VNNI) keeps weights to 7 bits so "
        "int16 pair sums cannot saturate; auto: this machine's CPU (default). See docs/quantization.md",
    )
    q.add_argument(
        "--reduce-range",
        dest="reduce_range",
        action="store_true",
        default=None,
        help="7-bit int8 weights (default: on for --target-cpu avx2)",
    )
    q.add_argument("--no-reduce-range", dest="reduce_range", action="store_false")
    s = q.add_argument_group("static int8")
    s.add_argument(
        "--calibration",
        choices=["minmax", "percentile", "entropy"],
        default="percentile",
        help="activation range calibration (default: percentile)",
    )
    s.add_argument(
        "--percentile", type=float, default=99.999, help="for --calibration percentile (default 99.999)"
    )
    s.add_argument(
        "--per-channel",
        dest="per_channel",
        action="store_true",
        default=None,
        help="per-channel weight scales (default for static-int8)",
    )
    s.add_argument("--no-per-channel", dest="per_channel", action="store_false")
    s.add_argument(
        "--keep-float-last",
        type=int,
        default=None,
        metavar="N",
        help="keep the last N weight layers (MatMul/Gemm/Conv) in float (default: 1 for static-int8, "
        "0 otherwise)",
    )
    s.add_argument(
        "--keep-float-first",
        type=int,
        default=0,
        metavar="N",
        help="keep the first N weight layers in float (they see raw features; default 0)",
    )
    s.add_argument(
        "--quantize-ops",
        choices=["layers", "all"],
        default="layers",
        help="layers (default): only MatMul/Gemm/Conv and their ReLU get Q/DQ, outputs stay float; "
        "all: every op onnxruntime can quantize (rounds probabilities to 1/255)",
    )
    s.add_argument(
        "--exclude-nodes", default="", metavar="A,B", help="node names to keep in float (see inspect --nodes)"
    )
    s.add_argument("--activation-type", choices=["uint8", "int8"], default="uint8")
    s.add_argument("--calibration-batch-rows", type=int, default=1000)
    s.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="skip onnxruntime's quant_pre_process (shape inference + optimization)",
    )
    _add_mapping_args(q, rows_default=5000, rows_help="calibration rows sampled from the data (default 5000)")
    q.set_defaults(handler=cmd_quantize)

    v = sub.add_parser(
        "verify",
        help="gate a quantized model against its reference on real rows",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("candidate", help="the converted .onnx model")
    v.add_argument("--reference", required=True, metavar="ORIGINAL.onnx", help="the model it was made from")
    v.add_argument("--label", metavar="COLUMN", help="true label column: also compare accuracy (and ROC AUC)")
    v.add_argument(
        "--label-output", metavar="NAME", help="model output holding the predicted label (default: auto)"
    )
    v.add_argument(
        "--score-output", metavar="NAME", help="model output holding the positive-class score (default: auto)"
    )
    v.add_argument("--card", metavar="PATH", help="model card to update (default: CANDIDATE.card.json)")
    v.add_argument("--no-card", action="store_true", help="do not write a card")
    v.add_argument(
        "--batch-rows", type=int, default=None, help="rows per session.run (default: the job's, or 10000)"
    )
    v.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the throughput figure")
    v.add_argument("--repeats", type=int, default=5, help="timed passes per model (best is kept)")
    v.add_argument("--json", action="store_true", help="print the verification as JSON")
    v.add_argument(
        "--canary",
        choices=["real", "synthetic"],
        default="real",
        help="rows of the card's canary batch, which every worker re-scores before scoring: real "
        "sampled rows (default) or, for sensitive data, synthetic rows drawn from each column's quantiles",
    )
    v.add_argument(
        "--all-targets",
        action="store_true",
        help="also score the candidate as AVX2-only x86 and VNNI/ARM CPUs would (emulated here) and "
        "gate each; says which targets (GPU, dynamic int8) cannot be emulated",
    )
    v.add_argument(
        "--canary-rows", type=int, default=256, help="rows in the canary batch (default 256; 0: none)"
    )
    b = v.add_argument_group("budget (the gate)")
    b.add_argument("--min-label-agreement", type=float, default=0.995, help="default 0.995")
    b.add_argument(
        "--max-metric-change", type=float, default=0.005, help="|Δ accuracy|, |Δ ROC AUC|; default 0.005"
    )
    b.add_argument(
        "--max-row-abs-diff",
        type=float,
        default=0.01,
        help="mean over rows of each row's largest |diff|, per float output; default 0.01",
    )
    b.add_argument(
        "--max-top-class-abs-diff",
        type=float,
        default=0.01,
        help="mean |diff| of the probability of the reference's predicted class; default 0.01",
    )
    b.add_argument(
        "--max-mean-abs-diff",
        dest="max_row_abs_diff",
        type=float,
        default=argparse.SUPPRESS,
        help="old name of --max-row-abs-diff (a mean over all classes hid broken many-class models)",
    )
    _add_mapping_args(v, rows_default=20_000, rows_help="rows sampled for the comparison (default 20000)")
    v.set_defaults(handler=cmd_verify)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _mapping(args, model, *, extra_columns=()):
    from batchinfer.model.calibration import mapping_from_columns, mapping_from_config, parse_columns

    if args.config:
        if args.columns:
            raise ConfigError(
                "give --config or --columns, not both",
                hint="drop --columns: --config takes the mapping from the job",
            )
        return mapping_from_config(
            args.config,
            model,
            data=args.data,
            overrides=args.overrides,
            env=args.env,
            extra_columns=extra_columns,
        )
    if args.overrides or args.env:
        raise ConfigError("--set and --env apply to --config, which is missing")
    if args.data:
        if not args.columns:
            raise ConfigError(
                "--data needs --columns (the float columns stacked into the model input)",
                hint="give e.g. --columns f0,f1,f2, or use --config JOB.yaml for the job's mapping",
            )
        return mapping_from_columns(
            args.data, parse_columns(args.columns), model, extra_columns=extra_columns
        )
    if args.columns:
        raise ConfigError("--columns needs --data PARQUET")
    return None


def _check_rows(args) -> None:
    if args.rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {args.rows}")


def _opset_imports(content: bytes) -> dict[str, int]:
    """Every operator set the model imports, by domain (``ai.onnx`` for the default one)."""
    import onnx

    proto = onnx.load_model_from_string(content)
    return {(imp.domain or "ai.onnx"): int(imp.version) for imp in proto.opset_import}


def _opset_text(imports: dict[str, int]) -> str:
    """``17``, ``17 (+ ai.onnx.ml 1)``, or ``ai.onnx.ml 1`` when the default domain is not imported."""
    main = imports.get("ai.onnx")
    others = ", ".join(f"{d} {v}" for d, v in sorted(imports.items()) if d != "ai.onnx")
    if main is None:
        return others or "-"
    return f"{main} (+ {others})" if others else str(main)


def cmd_inspect(args) -> int:
    from batchinfer.model.artifact import load_model
    from batchinfer.model.card import card_path_for, read_card

    art = load_model(args.model)
    info = {**art.summary(), **art.signature.to_dict()}
    info["opset_imports"] = _opset_imports(art.content)
    card_path = card_path_for(args.model)
    if card_path.exists():
        try:
            card = read_card(card_path)
            matches = card["model"]["sha256"].lower() == art.sha256
            ver = card.get("verification") or {}
            info["card"] = {
                "path": str(card_path),
                "method": card.get("method"),
                "matches_model": matches,
                "verified": bool(ver.get("passed")) and matches,
            }
        except Exception as exc:  # an unreadable card must not hide the model's own facts
            info["card"] = {"path": str(card_path), "error": str(exc)}
    if args.nodes:
        import onnx

        proto = onnx.load_model_from_string(art.content)
        info["nodes"] = [
            {"name": n.name, "op_type": n.op_type, "domain": n.domain or "ai.onnx"} for n in proto.graph.node
        ]
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"model      {art.path}")
    print(f"sha256     {art.sha256}")
    print(f"size       {art.size_bytes:,} bytes")
    print(f"opset      {_opset_text(info['opset_imports'])}   ir_version {info['ir_version']}")
    print(f"producer   {info['producer'] or '-'}")
    for title, specs in (("inputs", art.signature.inputs), ("outputs", art.signature.outputs)):
        print(f"{title}:")
        for t in specs:
            shape = "[" + ", ".join("?" if d is None else str(d) for d in (t.shape or ())) + "]"
            print(f"  {t.name:<24} {t.onnx_type:<18} {shape if t.shape is not None else '-'}")
    if "card" in info:
        c = info["card"]
        state = c.get("error") or (
            f"method {c['method']}, "
            + ("verified" if c["verified"] else "NOT verified")
            + ("" if c["matches_model"] else " (card describes another file: digest differs)")
        )
        print(f"card       {c['path']}: {state}")
    for n in info.get("nodes", []):
        print(f"  node {n['name']:<32} {n['op_type']} ({n['domain']})")
    return EXIT_OK


def cmd_quantize(args) -> int:
    from batchinfer.model.artifact import load_model
    from batchinfer.model.card import card_path_for, new_card, write_card
    from batchinfer.model.quantize import QuantizeOptions, quantize_model

    _check_rows(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputError(
            f"--out {out} already exists", hint="pass --force to overwrite it, or choose another path"
        )
    exclude = tuple(n.strip() for n in args.exclude_nodes.split(",") if n.strip())
    options = QuantizeOptions(
        method=args.method,
        calibration=args.calibration,
        percentile=args.percentile,
        per_channel=args.per_channel,
        keep_float_last=args.keep_float_last,
        keep_float_first=args.keep_float_first,
        quantize_ops=args.quantize_ops,
        exclude_nodes=exclude,
        activation_type=args.activation_type,
        preprocess=args.preprocess,
        calibration_rows=args.rows,
        calibration_batch_rows=args.calibration_batch_rows,
        seed=0 if args.seed is None else args.seed,
        target_cpu=args.target_cpu,
        reduce_range=args.reduce_range,
    )
    reference = load_model(args.model)
    mapping = _mapping(args, reference) if args.method == "static-int8" else None
    if args.method == "static-int8" and mapping is None:
        raise ConfigError(
            "static-int8 needs calibration data",
            hint="give --config JOB.yaml (the job's input mapping) or --data PARQUET --columns f0,f1,...",
        )
    feeds = None
    if mapping is not None:
        feeds = mapping.iter_feeds(
            options.calibration_rows, batch_rows=options.calibration_batch_rows, seed=options.seed
        )
    result = quantize_model(args.model, out, options, calibration_feeds=feeds)
    candidate = load_model(out)
    parameters = dict(result.parameters)
    if mapping is not None:
        parameters["calibration_data"] = {
            "source": mapping.source,
            "path": mapping.selection.root.uri,
            "rows": result.calibration_rows,
        }
    card_path = Path(args.card) if args.card else card_path_for(out)
    card = new_card(
        candidate,
        card_path=card_path,
        reference=reference,
        method=args.method,
        parameters=parameters,
        notes=result.notes,
    )
    write_card(card, card_path)
    print(
        f"{args.method}: {reference.path} ({reference.size_bytes:,} bytes) → {candidate.path} "
        f"({candidate.size_bytes:,} bytes, ×{candidate.size_bytes / reference.size_bytes:.3f})\n"
        f"card: {card_path} (not verified yet)\n"
        f"next: batchinfer model verify {candidate.path} --reference {reference.path} "
        + ("--config JOB.yaml" if not args.config else f"--config {args.config}")
        + " [--label COLUMN]"
    )
    target = result.parameters.get("target_cpu")
    if target:
        how = "auto: this machine's CPU" if args.target_cpu == "auto" else "--target-cpu"
        print(f"int8 recipe for {target} ({how}; reduce_range {result.parameters.get('reduce_range')})")
        if target != "avx2":
            print(
                "note: x86 executors without VNNI (AVX2 only) may score this model differently; "
                "--target-cpu avx2 is safe on every x86 CPU; check with verify --all-targets",
                file=sys.stderr,
            )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def cmd_verify(args) -> int:
    from batchinfer.model.artifact import load_model
    from batchinfer.model.card import card_for_verification, card_path_for, write_card
    from batchinfer.model.verify import VerificationBudget, format_report, verify_models

    _check_rows(args)
    if args.threads < 1 or args.repeats < 1 or (args.batch_rows is not None and args.batch_rows < 1):
        raise ConfigError("--threads, --repeats and --batch-rows must be >= 1")
    if args.canary_rows < 0:
        raise ConfigError(f"--canary-rows must be >= 0, got {args.canary_rows}", hint="0 stores no canary")
    budget = VerificationBudget(
        min_label_agreement=args.min_label_agreement,
        max_metric_change=args.max_metric_change,
        max_row_abs_diff=args.max_row_abs_diff,
        max_top_class_abs_diff=args.max_top_class_abs_diff,
    )
    reference = load_model(args.reference)
    candidate = load_model(args.candidate)
    mapping = _mapping(args, reference, extra_columns=[args.label] if args.label else [])
    if mapping is None:
        raise ConfigError(
            "verify needs real rows: give --config JOB.yaml or --data PARQUET --columns f0,f1,...",
            hint="verify on the data the job will score, not on the calibration sample",
        )
    report = verify_models(
        candidate,
        reference,
        mapping,
        rows=args.rows,
        label_column=args.label,
        label_output=args.label_output,
        score_output=args.score_output,
        batch_rows=args.batch_rows or (mapping.spec.batch_rows if args.config else 10_000),
        threads=args.threads,
        repeats=args.repeats,
        seed=1 if args.seed is None else args.seed,
        budget=budget,
        canary_rows=args.canary_rows,
        canary_source=args.canary,
        all_targets=args.all_targets,
    )
    verification = report.to_dict()
    verification["candidate_sha256"] = candidate.sha256
    verification["reference_sha256"] = reference.sha256
    card_path = None
    if not args.no_card:
        card_path = Path(args.card) if args.card else card_path_for(args.candidate)
        card, notes = card_for_verification(card_path, candidate, reference)
        card["verification"] = verification
        card["canary"] = report.canary
        card.setdefault("notes", []).extend(notes)
        write_card(card, card_path)
    if args.json:
        print(json.dumps({**verification, "card": None if card_path is None else str(card_path)}, indent=2))
    else:
        print(format_report(report, candidate.path, reference.path))
        if card_path is not None:
            print(
                f"card: {card_path} ({'verified' if report.passed else 'verification FAILED: the job will refuse it'})"
            )
    if not report.passed:
        raise GateFailedError(
            f"model {candidate.path} failed verification against {reference.path}: "
            + "; ".join(report.failures),
            failures=report.failures,
            hint="try another method or calibration (static-int8 --calibration percentile --per-channel "
            "--keep-float-last 1, or dynamic-int8), or relax the budget flags if the change is acceptable",
        )
    return EXIT_OK
