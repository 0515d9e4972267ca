"""What Great Expectations accepts, as a table this project owns: names, arguments, kinds.

``batchinfer validate`` checks expectation configs against this table instead of importing
great_expectations (~3 s). ``tests/unit/test_expectation_table.py`` compares it with the
expectations GX registers (argument names, kinds, required flags and validators), so a GX
upgrade that changes any of them fails the tests; regenerate with
``python -m tests.support.gx_signatures`` and review the diff.

Kinds: ``str``, ``int``, ``number`` (a float; ``number[0,1]`` with bounds), ``bool``, ``date``,
``list``, ``str_list``, ``dict``, ``one_of(a|b)``, ``object`` (anything); ``+param`` means a GX
suite parameter dict is accepted too. A ``+`` joins alternatives.
"""

from __future__ import annotations

COMMON_ARGUMENTS: tuple[str, ...] = (
    "catch_exceptions",
    "description",
    "id",
    "meta",
    "notes",
    "rendered_content",
    "result_format",
    "severity",
    "windows",
)
"""Arguments every expectation class has (batchinfer sets ``meta`` and ``severity`` itself)."""

ARGUMENTS: dict[str, dict[str, tuple[str, bool]]] = {
    "expect_column_distinct_values_to_be_in_set": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
    },
    "expect_column_distinct_values_to_contain_set": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
    },
    "expect_column_distinct_values_to_equal_set": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
    },
    "expect_column_kl_divergence_to_be_less_than": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "partition_object": ("dict", False),
        "threshold": ("number+param", False),
        "internal_weight_holdout": ("number[0,1]+param", False),
        "tail_weight_holdout": ("number[0,1]+param", False),
        "bucketize_data": ("bool+param", False),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
    },
    "expect_column_max_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_mean_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_median_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_min_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_most_common_value_to_be_in_set": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
        "ties_okay": ("bool+param", False),
    },
    "expect_column_pair_values_a_to_be_greater_than_b": {
        "column_A": ("str", True),
        "column_B": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "or_equal": ("bool+param", False),
        "ignore_row_if": ("one_of(both_values_are_missing|either_value_is_missing|neither)+param", False),
    },
    "expect_column_pair_values_to_be_equal": {
        "column_A": ("str", True),
        "column_B": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "ignore_row_if": ("one_of(both_values_are_missing|either_value_is_missing|neither)+param", False),
    },
    "expect_column_pair_values_to_be_in_set": {
        "column_A": ("str", True),
        "column_B": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_pairs_set": ("list+param", True),
        "ignore_row_if": ("one_of(both_values_are_missing|either_value_is_missing|neither)+param", False),
    },
    "expect_column_proportion_of_non_null_values_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+param", False),
        "max_value": ("number+param", False),
        "strict_min": ("bool", False),
        "strict_max": ("bool", False),
        "library_metadata": ("dict", False),
    },
    "expect_column_proportion_of_unique_values_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+param", False),
        "max_value": ("number+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
        "library_metadata": ("dict", False),
    },
    "expect_column_quantile_values_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "quantile_ranges": ("object+param", True),
        "allow_relative_error": ("bool+str+param", False),
    },
    "expect_column_stdev_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+param", False),
        "max_value": ("number+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_sum_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_to_exist": {"column": ("str", True), "column_index": ("int+param", False)},
    "expect_column_type_to_be": {"column": ("str", True), "type_": ("str+param", True)},
    "expect_column_unique_value_count_to_be_between": {
        "column": ("str", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("int+param", False),
        "max_value": ("int+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
        "library_metadata": ("dict", False),
    },
    "expect_column_value_lengths_to_be_between": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("int+param", False),
        "max_value": ("int+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_value_lengths_to_equal": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value": ("number+param", True),
    },
    "expect_column_value_z_scores_to_be_less_than": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "threshold": ("number+param", True),
        "double_sided": ("bool+param", True),
    },
    "expect_column_values_to_be_between": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
    },
    "expect_column_values_to_be_dateutil_parseable": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "library_metadata": ("dict", False),
    },
    "expect_column_values_to_be_decreasing": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "strictly": ("bool+param", False),
        "library_metadata": ("dict", False),
    },
    "expect_column_values_to_be_in_set": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
    },
    "expect_column_values_to_be_in_type_list": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "type_list": ("str_list+param", False),
    },
    "expect_column_values_to_be_increasing": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "strictly": ("bool+param", False),
        "library_metadata": ("dict", False),
    },
    "expect_column_values_to_be_json_parseable": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "library_metadata": ("dict", False),
    },
    "expect_column_values_to_be_null": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "expect_column_values_to_be_of_type": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "type_": ("str+param", True),
    },
    "expect_column_values_to_be_unique": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "expect_column_values_to_match_json_schema": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "json_schema": ("dict", True),
        "library_metadata": ("dict", False),
    },
    "expect_column_values_to_match_like_pattern": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "like_pattern": ("str+param", True),
        "escape": ("str+param", False),
    },
    "expect_column_values_to_match_like_pattern_list": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "like_pattern_list": ("str_list+param", True),
        "match_on": ("one_of(any|all)+param", False),
        "escape": ("str+param", False),
    },
    "expect_column_values_to_match_regex": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "regex": ("str+param", False),
    },
    "expect_column_values_to_match_regex_list": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "regex_list": ("str_list+param", True),
        "match_on": ("one_of(any|all)+param", False),
    },
    "expect_column_values_to_match_strftime_format": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "strftime_format": ("str+param", True),
    },
    "expect_column_values_to_not_be_in_set": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "value_set": ("list+param", True),
    },
    "expect_column_values_to_not_be_null": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "expect_column_values_to_not_be_outliers": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "method": ("one_of(iqr|std)+param", False),
        "multiplier": ("number[0,]+param", False),
    },
    "expect_column_values_to_not_match_like_pattern": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "like_pattern": ("str+param", True),
        "escape": ("str+param", False),
    },
    "expect_column_values_to_not_match_like_pattern_list": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "like_pattern_list": ("str_list+param", True),
        "escape": ("str+param", False),
    },
    "expect_column_values_to_not_match_regex": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "regex": ("str+param", True),
    },
    "expect_column_values_to_not_match_regex_list": {
        "column": ("str", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "regex_list": ("str_list+param", True),
    },
    "expect_compound_columns_to_be_unique": {
        "column_list": ("object", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "ignore_row_if": ("one_of(all_values_are_missing|any_value_is_missing|never)", False),
    },
    "expect_multicolumn_sum_to_equal": {
        "column_list": ("str_list", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "ignore_row_if": ("one_of(all_values_are_missing|any_value_is_missing|never)+param", False),
        "sum_total": ("number+param", True),
    },
    "expect_multicolumn_values_to_be_equal": {
        "column_list": ("str_list", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "ignore_row_if": ("one_of(all_values_are_missing|any_value_is_missing|never)+param", False),
    },
    "expect_query_results_to_match_comparison": {
        "base_query": ("str+param", True),
        "comparison_data_source_name": ("str+param", True),
        "comparison_query": ("str+param", True),
        "mostly": ("number[0,1]+param", False),
    },
    "expect_select_column_values_to_be_unique_within_record": {
        "column_list": ("object", True),
        "mostly": ("number[0,1]+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
        "ignore_row_if": ("str+param", False),
    },
    "expect_table_column_count_to_be_between": {
        "min_value": ("number+date+param", False),
        "max_value": ("number+date+param", False),
    },
    "expect_table_column_count_to_equal": {"value": ("int+param", True)},
    "expect_table_columns_to_match_ordered_list": {"column_list": ("list+param", False)},
    "expect_table_columns_to_match_set": {
        "column_set": ("list+param", False),
        "exact_match": ("bool+param", False),
    },
    "expect_table_row_count_to_be_between": {
        "min_value": ("int+date+param", False),
        "max_value": ("int+date+param", False),
        "strict_min": ("bool+param", False),
        "strict_max": ("bool+param", False),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "expect_table_row_count_to_equal": {
        "value": ("int+param", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "expect_table_row_count_to_equal_other_table": {
        "other_table_name": ("str+param", True),
        "row_condition": ("str+object", False),
        "condition_parser": (
            "one_of(great_expectations|great_expectations__experimental__|pandas|spark)",
            False,
        ),
    },
    "unexpected_rows_expectation": {"unexpected_rows_query": ("str+param", True)},
}
"""GX expectation type → {argument: (kind, required)}, in GX field order."""

GX_VALIDATORS: dict[str, tuple[str, ...]] = {
    "expect_column_distinct_values_to_be_in_set": ("_validate_value_set",),
    "expect_column_quantile_values_to_be_between": ("validate_quantile_ranges",),
    "expect_column_value_lengths_to_be_between": ("_validate_min_or_max_set",),
    "expect_column_values_to_be_between": ("check_min_val_or_max_val",),
    "expect_column_values_to_match_like_pattern": ("validate_like_pattern_escape",),
    "expect_column_values_to_match_like_pattern_list": (
        "validate_like_pattern_escape",
        "validate_like_pattern_list",
    ),
    "expect_column_values_to_match_regex_list": ("_validate_regex_list",),
    "expect_column_values_to_match_strftime_format": ("validate_strftime_format",),
    "expect_column_values_to_not_match_like_pattern": ("validate_like_pattern_escape",),
    "expect_column_values_to_not_match_like_pattern_list": (
        "validate_like_pattern_escape",
        "validate_like_pattern_list",
    ),
    "expect_column_values_to_not_match_regex_list": ("_validate_regex_list",),
    "expect_compound_columns_to_be_unique": ("_validate_column_list",),
    "expect_multicolumn_sum_to_equal": ("_validate_column_list",),
    "expect_multicolumn_values_to_be_equal": ("_validate_column_list",),
    "expect_select_column_values_to_be_unique_within_record": ("_validate_column_list",),
    "expect_table_row_count_to_be_between": ("_root_validate",),
    "unexpected_rows_expectation": ("_validate_query",),
}
"""The validators GX runs beyond argument types (see ``RULES`` for the ones checked here)."""

RULES: dict[str, tuple[str, ...]] = {
    "check_min_val_or_max_val": ("min_or_max",),
    "_validate_min_or_max_set": ("min_or_max",),
    "_root_validate": ("min_le_max",),
    "_validate_value_set": ("non_empty", "value_set"),
    "_validate_regex_list": ("non_empty", "regex_list"),
    "_validate_column_list": ("two_or_more", "column_list"),
}
"""GX validators this module reproduces (by name); the rest are left to GX when the job runs."""

LEFT_TO_GX: frozenset[str] = frozenset(
    {
        "validate_quantile_ranges",
        "validate_like_pattern_escape",
        "validate_like_pattern_list",
        "validate_strftime_format",
        "_validate_query",
    }
)
"""GX validators not reproduced here: GX itself checks them when it builds the expectation."""

SPARK_TYPE_NAMES: frozenset[str] = frozenset(
    {
        "AnsiIntervalType",
        "AnyTimeType",
        "ArrayType",
        "AtomicType",
        "BinaryType",
        "BooleanType",
        "ByteType",
        "CalendarIntervalType",
        "CharType",
        "DataType",
        "DateType",
        "DatetimeType",
        "DayTimeIntervalType",
        "DecimalType",
        "DoubleType",
        "FloatType",
        "FractionalType",
        "GeographyType",
        "GeometryType",
        "IntegerType",
        "IntegralType",
        "LongType",
        "MapType",
        "NullType",
        "NumericType",
        "ShortType",
        "SpatialType",
        "StringType",
        "StructType",
        "TimeType",
        "TimestampNTZType",
        "TimestampType",
        "UserDefinedType",
        "VarcharType",
        "VariantType",
        "YearMonthIntervalType",
    }
)
"""Class names in ``pyspark.sql.types`` ending in ``Type`` (what ``dtype`` may name)."""
