"""Read Great Expectations' registered expectations as (argument kinds, validators).

Used by the test that keeps ``batchinfer.checks.expectation_table`` in step with GX, and to
regenerate that table (``python -m tests.support.gx_signatures``). Imports great_expectations.
"""

from __future__ import annotations

import datetime as dt
import typing

_LIST_TYPES = (list, set, tuple, frozenset, typing.Sequence)
# Validators every expectation has (result format, row condition): not about its own arguments.
_COMMON_VALIDATORS = {"_validate_result_format", "_validate_row_condition", "_transform_legacy_row_condition"}


def _member_kind(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one_of(" + "|".join(str(a) for a in typing.get_args(tp)) + ")"
    if origin in _LIST_TYPES or tp in _LIST_TYPES or origin is typing.Sequence:
        args = typing.get_args(tp)
        if args and all(isinstance(a, type) and issubclass(a, str) for a in args):
            return "str_list"
        return "list"
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "number"
    if tp is dict:
        return "dict"
    if tp in (dt.date, dt.datetime):
        return "date"
    if isinstance(tp, type) and issubclass(tp, str):
        return "str"
    if isinstance(tp, type) and issubclass(tp, float) and hasattr(tp, "ge"):
        lo = tp.ge if tp.ge is not None else tp.gt
        hi = tp.le if tp.le is not None else tp.lt
        return f"number[{'' if lo is None else f'{lo:g}'},{'' if hi is None else f'{hi:g}'}]"
    return "object"


def kind_of(tp) -> str:
    """A short kind for a GX argument type: ``number+date+param``, ``str``, ``one_of(a|b)``..."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    members = typing.get_args(tp) if typing.get_origin(tp) is typing.Union else (tp,)
    members = [m for m in members if m is not type(None)]
    kinds = [_member_kind(m) for m in members]
    if len(kinds) > 1 and "dict" in kinds:  # a suite parameter ({"$PARAMETER": ...}) is allowed
        kinds = [k for k in kinds if k != "dict"] + ["param"]
    if "object" in kinds and "str" in kinds:  # row conditions: a string or a condition object
        kinds = ["str", "object"]
    return "+".join(dict.fromkeys(kinds))


def gx_signatures() -> tuple[dict, dict, tuple[str, ...]]:
    """(name → {argument: (kind, required)}, name → validator names, common argument names)."""
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    common = tuple(sorted(Expectation.__fields__))
    arguments: dict[str, dict[str, tuple[str, bool]]] = {}
    validators: dict[str, tuple[str, ...]] = {}
    for name in sorted(list_registered_expectation_implementations()):
        cls = get_expectation_impl(name)
        arguments[name] = {
            k: (kind_of(f.outer_type_), bool(f.required))
            for k, f in cls.__fields__.items()
            if k not in Expectation.__fields__ and k != "batch_id"
        }
        names = [v.__name__ for _, v in cls.__post_root_validators__] + [
            v.__name__ for v in cls.__pre_root_validators__
        ]
        names += [v.func.__name__ for vs in cls.__validators__.values() for v in vs]
        validators[name] = tuple(sorted(set(names) - _COMMON_VALIDATORS))
    return arguments, validators, common


if __name__ == "__main__":  # regenerate the literal tables of batchinfer/checks/expectation_table.py
    import pprint

    args, vals, common = gx_signatures()
    print("COMMON_ARGUMENTS =", common)
    print("ARGUMENTS: dict[str, dict[str, tuple[str, bool]]] = ", end="")
    pprint.pprint(args, width=110, sort_dicts=False)
    print("GX_VALIDATORS: dict[str, tuple[str, ...]] = ", end="")
    pprint.pprint({k: v for k, v in vals.items() if v}, width=110)
