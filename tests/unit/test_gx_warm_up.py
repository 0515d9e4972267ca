"""Great Expectations imports in a background thread at the lowest CPU priority, the rest of the
process keeping its own (the JVM's start and the tasks go first on a busy machine)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from batchinfer.checks import single_pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_the_import_thread_alone_runs_at_the_lowest_priority():
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def body():
        seen["lowered"] = single_pass.lower_thread_priority()
        seen["own"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        child = threading.Thread(
            target=lambda: seen.__setitem__(
                "child", os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            )
        )
        child.start()
        child.join()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"lowered": True, "own": 19, "child": 19}  # threads it starts inherit it
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    assert os.getpriority(os.PRIO_PROCESS, 0) == main_before  # the process (and its children) too


def test_warm_up_imports_great_expectations_and_leaves_the_caller_alone():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = single_pass.warm_up()
    assert thread.name == "batchinfer-gx-import" and thread.daemon
    thread.join(timeout=120)
    assert not thread.is_alive() and "great_expectations.expectations" in sys.modules
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
