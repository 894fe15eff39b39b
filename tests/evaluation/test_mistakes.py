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


def test_display_thresholds_balance_misses_and_false_alarms() -> None:
    from labelpilot.evaluation.detect import choose_thresholds, evaluate_detections

    # cats score 0.82 and 0.52, a false cat 0.42-0.44; dogs score low (0.12) but right,
    # a false dog 0.03
    per_image = []
    for k in range(3):  # the same picture thrice: 6 cats, 3 dogs
        gts = [GtBox((0, 0, 10, 10), "cat"), GtBox((20, 0, 30, 10), "cat"),
               GtBox((50, 50, 60, 60), "dog")]
        dets = [DetBox((0, 0, 10, 10), "cat", 0.82), DetBox((20, 0, 30, 10), "cat", 0.52),
                DetBox((70, 70, 80, 80), "cat", 0.42 + 0.01 * k),
                DetBox((50, 50, 60, 60), "dog", 0.12), DetBox((90, 0, 99, 9), "dog", 0.03)]
        per_image.append((dets, gts))
    got = choose_thresholds(per_image, min_boxes=3)
    # cats: every true one shown and none of the false ones from 0.45 to 0.5 (F1 1.0);
    # the middle of that plateau. Dogs: shown from 0.1 (F1 1.0 from 0.05 to 0.1)
    assert got["class_thresholds"] == {"cat": 0.5, "dog": 0.1}
    assert got["f1"]["cat"] == 1.0 and got["f1"]["dog"] == 1.0
    # over all classes one threshold cannot do both: the best keeps the dogs and shows
    # the false cats (F1 2*9/(2*9+3) = 0.857 at 0.05-0.1; 0.8 at 0.45, without the dogs)
    assert got["score_threshold"] == 0.1 and round(got["f1"]["all"], 3) == 0.857
    # a class with too few boxes gets no threshold of its own
    assert "dog" not in choose_thresholds(per_image, min_boxes=4)["class_thresholds"]
    # precision of what is shown: at 0.5 for cats and 0.1 for dogs, all right
    shown = [([DetBox(d.box, d.label, d.score, d.score >= {"cat": 0.5, "dog": 0.1}[d.label])
               for d in dets], gts) for dets, gts in per_image]
    assert evaluate_detections(shown)["precision"] == 1.0
    everything = [([DetBox(d.box, d.label, d.score) for d in dets], gts)
                  for dets, gts in per_image]
    assert evaluate_detections(everything)["precision"] == 9 / 15
