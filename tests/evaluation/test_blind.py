"""The blind baseline answers from the training split's answers alone, scored like the model."""

from __future__ import annotations

from embodia.evaluation.blind import AnswerPrior, beats_blind


def _row(category, subject, answer, answer_class=None, env="door-open-v3", tolerance=None):
    row = {
        "env_name": env,
        "category": category,
        "subject": list(subject),
        "answer": answer,
        "tolerance": tolerance,
        "conversations": [{"value": "q"}, {"value": "a"}],
    }
    if answer_class is not None:
        row["answer_class"] = answer_class
    return row


def test_a_choice_is_answered_with_the_most_common_training_answer():
    pair = ("drawer", "gripper")
    train = [_row("depth_order", pair, {"choice": c}, c) for c in ["gripper"] * 3 + ["drawer"]]
    prior = AnswerPrior(train)
    assert prior.correct(_row("depth_order", pair, {"choice": "gripper"}, "gripper"))
    assert not prior.correct(_row("depth_order", pair, {"choice": "drawer"}, "drawer"))


def test_values_points_and_boxes_use_the_median_and_the_mean():
    tol = {"abs": 0.02, "rel": 0.1}
    train = [_row("height", ("handle",), {"value": v}, tolerance=tol) for v in (0.1, 0.2, 0.5)]
    train += [
        _row("point", ("handle",), {"point_2d": p, "box_2d": [0, 0, 1, 1]})
        for p in ([0, 0], [10, 20])
    ]
    train += [_row("box", ("handle",), {"bbox_2d": [0, 0, 10, 10]})] * 2
    prior = AnswerPrior(train)
    assert prior.correct(_row("height", ("handle",), {"value": 0.21}, tolerance=tol))
    assert not prior.correct(_row("height", ("handle",), {"value": 0.3}, tolerance=tol))
    assert prior.correct(_row("point", ("handle",), {"box_2d": [4, 9, 6, 11]}))  # mean (5, 10)
    assert not prior.correct(_row("point", ("handle",), {"box_2d": [20, 20, 30, 30]}))
    assert prior.correct(_row("box", ("handle",), {"bbox_2d": [1, 1, 10, 10]}, tolerance={}))


def test_an_unseen_question_falls_back_to_its_task_then_its_category():
    train = [_row("next_subtask", (), {"subtask": "reach"}, "reach", env="door-open-v3")] * 2
    prior = AnswerPrior(train)
    other_task = _row("next_subtask", (), {"subtask": "reach"}, "reach", env="window-open-v3")
    assert prior.correct(other_task)  # the category-wide answer
    assert AnswerPrior([]).guess(other_task) is None
    assert not AnswerPrior([]).correct(other_task)


def test_old_rows_without_answer_classes_still_have_a_prior():
    train = [_row("relation", ("a", "b"), {"choice": "left"})] * 2
    assert AnswerPrior(train).correct(_row("relation", ("a", "b"), {"choice": "left"}))


def test_evidence_needs_the_whole_interval_above_the_blind_rate():
    assert beats_blind({"episodes": 50, "ci95": [0.6, 0.8]}, 0.5)
    assert not beats_blind({"episodes": 50, "ci95": [0.45, 0.8]}, 0.5)
    assert not beats_blind({"episodes": 0, "ci95": [0.0, 1.0]}, 0.0)
