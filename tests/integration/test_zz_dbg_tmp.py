import dataclasses
from tests.integration.test_drift_spark import *
def test_dbg(spark, reference, ref_table):
    s = current_counts(spark.createDataFrame(ref_table), reference)
    n = count_arrays(_columns(ref_table), reference)
    for k in s.columns:
        a, b = s.columns[k], n.columns[k]
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                print("DIFF", k, f.name, str(getattr(a, f.name))[:200], str(getattr(b, f.name))[:200])
            if getattr(a, f.name) != getattr(reference.columns[k], f.name):
                print("DIFFREF", k, f.name, str(getattr(a, f.name))[:200], str(getattr(reference.columns[k], f.name))[:200])
