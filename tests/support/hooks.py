"""Custom pre/post-processing hooks used by the safety tests (model.preprocess / postprocess)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def double_f0(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Preprocess: f0 → 2 * f0 (other columns unchanged)."""
    i = batch.schema.get_field_index("f0")
    doubled = pc.multiply(batch.column(i), pa.scalar(2.0, batch.column(i).type))
    return batch.set_column(i, "f0", doubled)


def round_score(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Postprocess: round the score column to 2 decimals, keeping the schema."""
    i = batch.schema.get_field_index("score")
    return batch.set_column(i, batch.schema.field(i), pc.round(batch.column(i), 2))


def returns_none(batch):
    return None


NOT_CALLABLE = 42
