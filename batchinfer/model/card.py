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
