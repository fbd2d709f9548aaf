"""Window plans (sources/windows.py): lengths keyed by pair, layouts, the sharp frame."""

from __future__ import annotations

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.pairs.frame_average import average_windows
from blursynth.sources.windows import Window, parse_window, plan_windows, window_length

from .conftest import two_shots


@pytest.mark.parametrize("text,expect", [("5-25", (5, 25)), ("7", (7, 7)), (" 3 - 4 ", (3, 4)), (9, (9, 9))])
def test_parse_window(text, expect):
    assert parse_window(text) == expect


@pytest.mark.parametrize("text", ["25-5", "0-3", "abc", "4-", "1", "-3", "5-25-30"])
def test_parse_window_rejects(text):
    with pytest.raises(BadInputError, match="--window"):
        parse_window(text)


def test_plan_is_deterministic_and_keyed_by_pair():
    a = plan_windows([500, 300], window_min=5, window_max=25, seed=11)
    b = plan_windows([500, 300], window_min=5, window_max=25, seed=11)
    assert a == b
    assert [w.length for w in a] == [window_length(11, w.index, 5, 25) for w in a]
    assert {w.length for w in a} > {5, 25} or len({w.length for w in a}) > 10
    # A prefix of the plan does not depend on how many pairs are asked for.
    assert plan_windows([500, 300], window_min=5, window_max=25, seed=11, max_pairs=7) == a[:7]
    assert plan_windows([500, 300], window_min=5, window_max=25, seed=12) != a


def test_plan_layout_contiguous_gap_overlap_and_sources():
    wins = plan_windows([100, 40], window_min=5, window_max=9, seed=0)
    for prev, cur in zip(wins, wins[1:]):
        if cur.source == prev.source:
            assert cur.start == prev.stop
        else:
            assert cur.start == 0 and cur.source == prev.source + 1
    assert all(w.stop <= (100, 40)[w.source] for w in wins)
    assert {w.source for w in wins} == {0, 1}
    gapped = plan_windows([100], window_min=5, window_max=5, seed=0, gap=3)
    assert [w.start for w in gapped[:3]] == [0, 8, 16]
    over = plan_windows([100], window_min=6, window_max=6, seed=0, overlap=2)
    assert [w.start for w in over[:3]] == [0, 4, 8]
    with pytest.raises(BadInputError):
        plan_windows([100], window_min=5, window_max=9, seed=0, overlap=5)


@pytest.mark.usefixtures("kernel")  # it averages
def test_odd_only_and_middle_frame_choice():
    wins = plan_windows([1000], window_min=4, window_max=12, seed=5, odd_only=True)
    assert all(w.length % 2 == 1 and 5 <= w.length <= 11 for w in wins)
    assert {w.length for w in wins} == {5, 7, 9, 11}
    odd, even = Window(0, 0, 10, 5), Window(1, 0, 20, 6)
    assert (odd.sharp, odd.sharp_offset_frames) == (12, 0.0)  # the middle frame
    assert (even.sharp, even.sharp_offset_frames) == (23, 0.5)  # later of 22 and 23
    # Through the averager: frames whose value is their index.
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(40)]
    got = {w.start: s[0, 0, 0] for w, _, s in average_windows(enumerate(frames), [odd, even], crf="none")}
    assert got == {10: 12, 20: 23}


# --- scene cuts (issue 15, item 3) -------------------------------------------------------------


def test_watch_cuts_finds_the_cut_and_nothing_else():
    from blursynth.sources.windows import watch_cuts

    frames = two_shots()
    cuts = {}
    passed = [t for t, _ in watch_cuts(enumerate(frames), cuts)]
    assert passed == list(range(24))
    assert list(cuts) == [12] and cuts[12] > 0.5
    none = {}
    list(watch_cuts(enumerate(frames), none, threshold=1.0))
    assert none == {}


def test_a_window_holds_a_cut_only_if_it_crosses_it():
    from blursynth.sources.windows import cut_in

    cuts = {12: 0.9}
    assert cut_in(Window(0, 0, 10, 5), cuts) == 12  # frames 10..14 span the cut
    assert cut_in(Window(0, 0, 12, 5), cuts) is None  # starts with the new shot
    assert cut_in(Window(0, 0, 7, 5), cuts) is None  # ends with the old one


# --- windows from an exposure time (issue 15, item 3) -----------------------------------------


@pytest.mark.parametrize("text,expect", [("8-30", (8.0, 30.0)), ("20", (20.0, 20.0)), ("4.5 - 12.5", (4.5, 12.5)),
                                         (16, (16.0, 16.0))])
def test_parse_exposure_ms(text, expect):
    from blursynth.sources.windows import parse_exposure_ms

    assert parse_exposure_ms(text) == expect


@pytest.mark.parametrize("text", ["30-8", "0-5", "abc", "-3", "5-", "1e9x"])
def test_parse_exposure_ms_rejects(text):
    from blursynth.sources.windows import parse_exposure_ms

    with pytest.raises(BadInputError, match="--exposure-ms"):
        parse_exposure_ms(text)


def test_exposure_frames_follow_the_frame_rate():
    from blursynth.sources.windows import exposure_frames

    assert exposure_frames((20.0, 30.0), 240.0) == (5, 7)  # 4.8-7.2 frames: whole frames inside
    assert exposure_frames((50.0, 50.0), 60.0) == (3, 3)
    assert exposure_frames((10.0, 12.0), 240.0) == (3, 3)  # 2.4-2.88: no whole count inside, the nearest
    with pytest.raises(BadInputError, match="at least 2 frames"):
        exposure_frames((1.0, 4.0), 240.0)


def test_plan_windows_with_a_range_per_source():
    wins = plan_windows([30, 30], window_min=2, window_max=2, seed=0, ranges=[(12, 12), (3, 3)])
    assert [(w.source, w.length) for w in wins] == [(0, 12), (0, 12)] + [(1, 3)] * 10
    # Without ranges, the same call plans as before.
    assert plan_windows([30], window_min=5, window_max=5, seed=0) == plan_windows(
        [30], window_min=5, window_max=5, seed=0, ranges=[(5, 5)])
