"""Hand-made rows in the data engine's conversation format, shared by the evaluation tests."""

from __future__ import annotations


def _row(image, category, task_type, question, answer_text, answer, tolerance=None):
    return {
        "image": image,
        "depth": image.replace(".png", "_depth.png"),
        "conversations": [
            {"from": "human", "value": f"<image>\n{question}"},
            {"from": "gpt", "value": answer_text},
        ],
        "task_type": task_type,
        "category": category,
        "answer": answer,
        "tolerance": tolerance,
        "camera": "corner",
        "split": "test",
        "env_name": "pick-place-v3",
    }


#: Rows in the data engine's conversation format (qwen3 coordinates), one per category.
ENGINE_ROWS = [
    _row(
        "images/a/corner_0000.png",
        "point",
        "grounding",
        "Point to the puck.",
        '[{"point_2d": [500, 600], "label": "puck"}]',
        {"point_2d": [500, 600], "label": "puck", "box_2d": [480, 580, 520, 640]},
    ),
    _row(
        "images/a/corner_0000.png",
        "box",
        "grounding",
        "Give the bounding box of the gripper.",
        '[{"bbox_2d": [100, 100, 300, 300], "label": "gripper"}]',
        {"bbox_2d": [100, 100, 300, 300], "label": "gripper"},
        {"min_iou": 0.5},
    ),
    _row(
        "images/a/corner_0000.png",
        "distance",
        "spatial",
        "What is the distance in metres between the puck and the target location?",
        "About 0.20 m.",
        {"value": 0.2, "unit": "m"},
        {"abs": 0.02, "rel": 0.1},
    ),
    _row(
        "images/a/corner_0000.png",
        "height",
        "spatial",
        "How high above the table is the centre of the puck, in metres?",
        "About 0.02 m.",
        {"value": 0.02, "unit": "m"},
        {"abs": 0.02, "rel": 0.1},
    ),
    _row(
        "images/b/corner_0020.png",
        "depth_order",
        "spatial",
        "Which is closer to the camera, the gripper or the target location?",
        "The target location is closer to the camera.",
        {"choice": "goal"},
    ),
    _row(
        "images/b/corner_0020.png",
        "depth_order",
        "spatial",
        "Order these from nearest to farthest from the camera: the puck, the gripper, "
        "the target location.",
        "the gripper, the puck, the target location.",
        {"order": ["gripper", "puck", "goal"]},
    ),
    _row(
        "images/b/corner_0020.png",
        "relation",
        "spatial",
        "In the image, is the puck to the left or to the right of the gripper?",
        "The puck is to the left of the gripper.",
        {"choice": "left"},
    ),
    _row(
        "images/b/corner_0020.png",
        "relation",
        "spatial",
        "Which is higher above the table, the puck or the gripper?",
        "The gripper is higher.",
        {"choice": "gripper"},
    ),
    _row(
        "images/b/corner_0020.png",
        "next_subtask",
        "planning",
        'The robot\'s task is: "put the puck on the goal" What should it do next?',
        "Grasp the puck.",
        {"subtask": "grasp the puck", "index": 1},
    ),
    _row(
        "images/b/corner_0020.png",
        "plan",
        "planning",
        'Break the task "put the puck on the goal" into the steps the robot should take.',
        "1. Move above the puck.\n2. Grasp the puck.",
        {"subtasks": ["move above the puck", "grasp the puck"]},
    ),
]
