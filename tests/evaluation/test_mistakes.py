"""What a reviewer would have to fix in one image's shown proposals."""

from __future__ import annotations

from labelpilot.evaluation.detect import DetBox, GtBox, mistakes


def test_misses_and_false_alarms_of_the_shown_proposals() -> None:
    gts = [GtBox((0, 0, 10, 10), "cat"), GtBox((20, 0, 30, 10), "cat"),
           GtBox((50, 50, 60, 60), "dog"), GtBox((80, 80, 100, 100), "cat", crowd=True)]
    dets = [
        DetBox((0, 0, 10, 11), "cat", 0.9),  # finds the first cat
        DetBox((1, 0, 10, 10), "cat", 0.8),  # the same cat again: a false alarm
        DetBox((50, 50, 60, 60), "cat", 0.7),  # the dog, named cat: a false alarm ...
        DetBox((80, 80, 100, 100), "cat", 0.6),  # on a crowd region: neither
        DetBox((20, 0, 30, 10), "cat", 0.2, shown=False),  # not shown: the cat is missed
    ]
    missed, false = mistakes(dets, gts)
    assert sorted((g.label, g.box) for g in missed) == [("cat", (20, 0, 30, 10)),
                                                        ("dog", (50, 50, 60, 60))]  # ... and a miss
    assert sorted(d.score for d in false) == [0.7, 0.8]
    # the right boxes shown: nothing to fix
    assert mistakes([DetBox(g.box, g.label, 0.9) for g in gts[:3]], gts) == ([], [])
    assert mistakes([], []) == ([], [])
