"""sync.collector.paused: the cyclic collector off inside, back as it was after."""

from __future__ import annotations

import gc

import pytest

from sync.collector import paused


def test_paused_inside_and_enabled_again_after() -> None:
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_nested_pause_leaves_it_to_the_outer_one() -> None:
    with paused():
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_enabled_again_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_left_off_after_when_not_resumed() -> None:
    try:
        with paused(resume=False):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
