"""label_queue: the one choice of which answers people label, shared by the terminal labeller and the viewer."""

from __future__ import annotations

from collections import Counter

import pytest
from drift_records import make_records

from harness.errors import InputError
from harness.grading.label_sample import graded_answers, label_queue


def test_the_queue_holds_graded_answers_only_and_spreads_every_prefix_over_category_and_tier() -> None:
    records = make_records(cases_per_category=40, graded_share=0.5, seed=3)
    graded = graded_answers(records)
    queue = label_queue(graded, "alice", set(), None, seed=7)
    assert sorted(queue) == sorted(graded)  # every graded answer, each once, and nothing ungraded
    first = Counter((graded[key], key[2]) for key in queue[:20])
    assert set(first.values()) == {5}  # 2 categories x 2 tiers: 5 each in the first 20


def test_the_order_is_seeded_stable_paired_across_tiers_and_the_same_for_every_labeller() -> None:
    records = make_records(cases_per_category=30, seed=1)
    a = label_queue(graded_answers(records), "alice", set(), 12, seed=5)
    reordered = graded_answers(list(reversed(records)))
    assert a == label_queue(reordered, "bob", set(), 12, seed=5)  # order of the answers and who: no effect
    assert a != label_queue(graded_answers(records), "alice", set(), 12, seed=6)
    cases_by_tier = {tier: {key[0] for key in a if key[2] == tier} for tier in ("local", "cloud")}
    assert cases_by_tier["local"] == cases_by_tier["cloud"]  # the same questions for each tier


def test_answers_already_labelled_are_never_asked_again_and_the_queue_continues() -> None:
    graded = graded_answers(make_records(cases_per_category=30, seed=2))
    whole = label_queue(graded, "alice", set(), None, seed=0)
    done = set(whole[:10])
    rest = label_queue(graded, "alice", done, 5, seed=0)
    assert rest == whole[10:15]
    assert not done & set(label_queue(graded, "alice", done, None, seed=0))


def test_bad_arguments_are_input_errors() -> None:
    with pytest.raises(InputError, match="not a valid id"):
        label_queue({}, "<b>", set(), 3, seed=0)
    with pytest.raises(InputError, match="0 or more"):
        label_queue({}, "alice", set(), -1, seed=0)
    assert label_queue({}, "alice", set(), 5, seed=0) == []
