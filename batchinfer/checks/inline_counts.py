"""Drift counts taken inside the scoring pass: no extra Spark job, no extra JVM → Python transfer.

The scorer already holds every feature (input batch) and every prediction (output batch) in
Arrow; binning them on the reference profile's edges is a few ``searchsorted``/``bincount``
calls per batch. Each task adds its count vectors to an accumulator once, when its partition
is done. The scoring pass is the write job's result stage, and Spark applies a result task's
accumulator updates once per partition (failed attempts and duplicate speculative successes
are not counted), so the counts match the rows written exactly.

The same counts can be taken in a standalone Spark job with
:func:`batchinfer.checks.profile.current_counts` (used when profiling).
"""

from __future__ import annotations

from dataclasses import dataclass


def _subset(profile, columns):
    from batchinfer.checks.profile import ReferenceProfile

    return ReferenceProfile({c: profile.columns[c] for c in columns}, profile.row_count, profile.created_at)


def _counts_param(feature_grid, prediction_grid):
    from pyspark.accumulators import AccumulatorParam

    class CountsParam(AccumulatorParam):
        def zero(self, value):
            return None

        def addInPlace(self, a, b):
            if a is None:
                return b
            if b is None:
                return a
            return (
                feature_grid.reduce([a[0], b[0]]) if feature_grid else None,
                prediction_grid.reduce([a[1], b[1]]) if prediction_grid else None,
            )

    return CountsParam()


@dataclass
class InlineDriftCounts:
    """Wraps a scorer so it also counts features and predictions on the reference bins."""

    features: list[str]
    predictions: list[str]
    feature_grid: object
    prediction_grid: object
    accumulator: object

    @classmethod
    def create(cls, spark, profile, features: list[str], predictions: list[str]) -> InlineDriftCounts:
        from batchinfer.checks.profile import _Grid

        fg = _Grid.of(_subset(profile, features)) if features else None
        pg = _Grid.of(_subset(profile, predictions)) if predictions else None
        acc = spark.sparkContext.accumulator(None, _counts_param(fg, pg))
        return cls(list(features), list(predictions), fg, pg, acc)

    def wrap(self, scorer):
        features, predictions = self.features, self.predictions
        fg, pg, acc = self.feature_grid, self.prediction_grid, self.accumulator

        def counting_scorer(batches):
            f_counts = fg.empty() if fg else None
            p_counts = pg.empty() if pg else None

            def counted(it):
                for b in it:
                    if fg:
                        fg.count_batch({c: b.column(c) for c in features}, *f_counts)
                    yield b

            for out in scorer(counted(batches)):
                if pg:
                    pg.count_batch({c: out.column(c) for c in predictions}, *p_counts)
                yield out
            acc.add((f_counts, p_counts))

        return counting_scorer

    def results(self):
        """(feature counts, prediction counts) as ``ReferenceProfile`` objects (None when unused)."""
        value = self.accumulator.value
        if value is None:
            f = self.feature_grid.empty() if self.feature_grid else None
            p = self.prediction_grid.empty() if self.prediction_grid else None
            value = (f, p)
        feats = self.feature_grid.to_profile(*value[0]) if self.feature_grid else None
        preds = self.prediction_grid.to_profile(*value[1]) if self.prediction_grid else None
        return feats, preds
