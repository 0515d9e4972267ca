"""Model cards: the JSON record of how a model was made and verified, which the job trusts.

A job config may give ``model.card`` instead of ``model.path``: the job then scores the model
the card describes, checks its digest against the card, and refuses a card whose verification
failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from batchinfer.errors import ModelError

CARD_SCHEMA_VERSION = 1


def read_card(path: str | Path) -> dict:
    p = Path(path)
    try:
        card = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model card {p} not found", hint="check model.card; is this a typo?") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {p} is not readable JSON: {exc}") from exc
    if not isinstance(card, dict) or "model" not in card or "sha256" not in card.get("model", {}):
        raise ModelError(f"model card {p} has no model.sha256; it was not written by batchinfer")
    return card


def resolve_model_source(model_cfg) -> tuple[str, str | None, dict | None]:
    """(model file, expected sha256, card) for a ``model`` config section."""
    if model_cfg.card is None:
        return model_cfg.path, model_cfg.sha256, None
    card_path = Path(model_cfg.card)
    card = read_card(card_path)
    verification = card.get("verification")
    if not verification or not verification.get("passed"):
        reason = "has no verification record" if not verification else "records a failed verification"
        raise ModelError(
            f"model card {card_path} {reason}; the job only scores verified models",
            hint="run `batchinfer model verify` and fix the model until it passes",
        )
    model_file = Path(card["model"].get("path", ""))
    if not model_file.is_absolute():
        model_file = card_path.parent / model_file
    expected = card["model"]["sha256"]
    if model_cfg.sha256 and model_cfg.sha256.lower() != expected.lower():
        raise ModelError(
            f"model.sha256 {model_cfg.sha256} disagrees with the card's digest {expected}",
            hint="drop model.sha256 when using a card, or point at the right card",
        )
    return str(model_file), expected, card


# ---------------------------------------------------------------- writing cards

CARD_KIND = "batchinfer.model_card"


def utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def card_path_for(model_path: str | Path) -> Path:
    """Where a model's card lives by default: next to it, ``MODEL.onnx.card.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".card.json")


def tool_versions() -> dict:
    import platform
    from importlib import metadata

    from batchinfer import __version__

    versions = {"batchinfer": __version__, "python": platform.python_version()}
    for dist in ("onnx", "onnxruntime", "onnxruntime-gpu", "skl2onnx", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_entry(artifact, *, relative_to: Path | None = None) -> dict:
    """The card's description of one model file (a ``ModelArtifact``).

    The path is stored relative to the card's directory when the model sits next to it, so the
    pair can be moved or uploaded together.
    """
    path = Path(artifact.path)
    shown = str(path)
    if relative_to is not None:
        try:
            shown = str(path.resolve().relative_to(relative_to.resolve()))
        except ValueError:
            shown = str(path.resolve())
    return {
        "path": shown,
        "sha256": artifact.sha256,
        "size_bytes": artifact.size_bytes,
        "opset": artifact.signature.opset,
        "producer": artifact.signature.producer,
        "signature": artifact.signature.to_dict(),
    }


def new_card(
    model,
    *,
    card_path: str | Path,
    reference=None,
    method: str,
    parameters: dict | None = None,
    notes: list[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """A card for ``model`` (and the ``reference`` it was derived from), not yet verified."""
    card_dir = Path(card_path).parent
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "kind": CARD_KIND,
        "created_at": utc_now(),
        "model": model_entry(model, relative_to=card_dir),
        "reference": None if reference is None else model_entry(reference, relative_to=card_dir),
        "method": method,
        "parameters": dict(parameters or {}),
        "notes": list(notes or []),
        "verification": None,
        "tools": tool_versions(),
    }
    card.update(extra or {})
    return card


def write_card(card: dict, path: str | Path) -> Path:
    """Write ``card`` as JSON, atomically (a reader never sees half a card)."""
    import os
    import uuid

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.{uuid.uuid4().hex[:12]}.tmp"
    # os.open applies the process umask to 0o666 (mkstemp would make it 0600): a card is read
    # by jobs running as other users.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(card, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def card_for_verification(card_path: str | Path, model, reference) -> tuple[dict, list[str]]:
    """The card to record a verification in: the existing one if it describes this exact model
    file, else a fresh one (a stale card's method and parameters no longer apply)."""
    notes: list[str] = []
    p = Path(card_path)
    if p.exists():
        try:
            card = read_card(p)
        except ModelError as exc:
            notes.append(f"replaced unreadable card: {exc.message}")
            card = None
        if card is not None and card["model"]["sha256"].lower() == model.sha256.lower():
            card.setdefault("tools", {}).update(tool_versions())
            if card.get("reference") is None or card["reference"].get("sha256") != reference.sha256:
                if card.get("reference"):
                    notes.append(
                        f"reference changed from {card['reference'].get('sha256', '?')[:12]} to "
                        f"{reference.sha256[:12]} (verified against the new one)"
                    )
                card["reference"] = model_entry(reference, relative_to=p.parent)
            return card, notes
        if card is not None:
            notes.append(
                f"card {p} described another model file (sha256 {card['model']['sha256'][:12]}, now "
                f"{model.sha256[:12]}): started a new card"
            )
    return new_card(model, card_path=p, reference=reference, method="unknown"), notes


def apply_card(plan, card: dict | None):
    """What a verified card changes in a job's plan: the canary batch every worker re-scores, and
    for a batch-dependent model, ``runtime.batch_rows`` pinned to the size it was verified at
    (unless the config sets it) with a warning in the manifest."""
    import logging
    from dataclasses import replace

    if card is None:
        return plan
    runtime = plan.config.runtime
    changes: dict = {"on_canary_mismatch": runtime.on_canary_mismatch}
    if card.get("canary"):
        from batchinfer.model.canary import canary_digest

        # Workers keep one canary result per session; the digest tells them when the canary changed.
        changes["canary"] = {**card["canary"], "digest": canary_digest(card["canary"])}
    dep = (card.get("verification") or {}).get("batch_dependence") or {}
    if dep.get("dependent"):
        verified = dep.get("verified_batch_rows")
        flips = dep.get("label_flip_rate")
        note = (
            f"model is batch-dependent: its scores moved by up to {dep.get('max_abs_diff', 0):.3g} "
            f"({0 if flips is None else flips:.2%} labels flipped) between batches of "
            f"{dep.get('batch_rows')} rows at verification"
        )
        if verified and "batch_rows" not in runtime.model_fields_set:
            changes["batch_rows"] = int(verified)
            changes["batch_auto"] = False  # a batch-dependent model's scores depend on the cut
            note += f"; runtime.batch_rows pinned to the verified {verified}"
        elif verified and runtime.batch_rows != verified:
            note += f"; runtime.batch_rows {runtime.batch_rows} is not the verified {verified}"
        plan.notes.append(note)
        logging.getLogger("batchinfer").warning(note)
    plan.spec = replace(plan.spec, **changes)
    return plan
