"""Releasing memory after start-up: cycle garbage collected, the C heap trimmed where glibc is."""

from __future__ import annotations

import gc
import platform
import sys
import weakref

import pytest

from z2m_qbkg40lm import memory


class _Node:
    """Stands for a zigpy device clone: an object that only a reference cycle keeps alive."""

    def __init__(self) -> None:
        self.me = self


def test_reference_cycle_garbage_is_collected() -> None:
    node = _Node()
    gone = weakref.ref(node)
    gc.disable()  # no automatic collection may do the work for the function under test
    try:
        del node
        assert gone() is not None
        memory.release_unused_memory(trim=lambda pad: 0)
    finally:
        gc.enable()
    assert gone() is None


def test_the_heap_is_trimmed_with_nothing_kept_at_its_top() -> None:
    pads: list[int] = []

    def trim(pad: int) -> int:
        pads.append(pad)
        return 1

    memory.release_unused_memory(trim=trim)
    assert pads == [0]


def test_without_glibc_only_the_collection_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory._find_malloc_trim() is None
    memory.release_unused_memory()  # and does not fail


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = memory._find_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)
