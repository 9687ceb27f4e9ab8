"""CV-Bench and Where2Place loaders on tiny fixtures in their published formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from embodia.evaluation import public
from embodia.evaluation.bench import run_bench


@pytest.fixture()
def cvbench(tmp_path):
    root = tmp_path / "CV-Bench"
    (root / "img/2D/count").mkdir(parents=True)
    (root / "img/3D/depth").mkdir(parents=True)
    rows = [
        {
            "idx": 0,
            "type": "2D",
            "task": "Count",
            "image": "img/2D/count/ade20k_10.png",
            "question": "How many pictures are in the image?",
            "choices": ["0", "3", "2", "1"],
            "answer": "(B)",
            "prompt": "How many pictures are in the image? Select from the "
            "following choices.\n(A) 0\n(B) 3\n(C) 2\n(D) 1",
            "filename": "img/2D/count/ade20k_10.png",
            "source": "ADE20K",
            "source_dataset": "ADE20K Validation Set",
            "source_filename": "ADE_val_00000010.jpg",
            "target_class": "picture",
            "target_size": None,
            "bbox": None,
        },
        {
            "idx": 1,
            "type": "2D",
            "task": "Count",
            "image": "img/2D/count/ade20k_10.png",
            "question": "How many lamps?",
            "choices": ["1", "2"],
            "answer": "(A)",
            "prompt": "",
            "source": "COCO",
        },
        {
            "idx": 2,
            "type": "3D",
            "task": "Depth",
            "image": "img/3D/depth/omni3d_1.png",
            "question": "Which is closer to the camera?",
            "choices": ["chair", "table"],
            "answer": "(B)",
            "source": "Omni3D",
        },
    ]
    rng = np.random.default_rng(0)
    for r in rows:
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / r["image"])
    with open(root / "test.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return root


@pytest.fixture()
def where2place(tmp_path):
    root = tmp_path / "where2place"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = [
        {
            "question_id": 0,
            "image": "00.jpg",
            "category": "seen",
            "text": "Please point out free space on the table. Your answer should be formatted as a "
            "list of tuples, i.e. [(x1, y1), (x2, y2), ...]. The coordinates should be between 0 "
            "and 1.",
        },
        {"question_id": 1, "image": "01.jpg", "category": "unseen", "text": "Where to place it?"},
    ]
    for i, r in enumerate(rows):
        Image.fromarray(np.zeros((40, 100, 3), np.uint8)).save(root / "images" / r["image"])
        mask = np.zeros((40, 100), np.uint8)
        mask[:, :50] = 255  # left half is the free space
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.jpg", quality=100)
    with open(root / "point_questions.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return root


def test_cvbench_loader_and_scoring(cvbench):
    items = public.load_cvbench(cvbench)
    assert [it.category for it in items] == ["2D/Count", "2D/Count", "3D/Depth"]
    assert items[0].load_image().shape == (24, 32, 3)
    assert "(D) 1" in items[1].prompt or "(B) 2" in items[1].prompt  # composed when empty
    assert public.score_cvbench(items[0], "(B)")[1] == "correct"
    assert public.score_cvbench(items[0], "The answer is A.")[1] == "wrong"
    assert public.score_cvbench(items[0], "3")[1] == "correct"  # the choice text itself
    assert public.score_cvbench(items[0], "many")[1] == "unparseable"
    records = [
        {"source": "ADE20K", "score": 1.0},
        {"source": "COCO", "score": 0.0},
        {"source": "Omni3D", "score": 1.0},
    ]
    head = public.cvbench_headline(records)
    assert head["2D accuracy"] == 0.5 and head["CV-Bench combined"] == 0.75


def test_cvbench_parquet_export(cvbench, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (cvbench / "test.jsonl").read_text().splitlines()]
    for r in rows:
        r["image"] = {"bytes": (cvbench / r["image"]).read_bytes(), "path": r["image"]}
    out = tmp_path / "pq"
    out.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), out / "test.parquet")
    items = public.load_cvbench(out)
    assert len(items) == 3 and items[2].load_image().shape == (24, 32, 3)


def test_where2place_scoring(where2place):
    items = public.load_where2place(where2place)
    assert [it.category for it in items] == ["seen", "unseen"]
    size = (100, 40)
    assert public.score_where2place(items[0], "[(0.1, 0.5), (0.2, 0.5)]", size, "qwen3")[
        0
    ] == pytest.approx(1.0, abs=0.02)
    assert public.score_where2place(items[0], "[(0.1, 0.5), (0.9, 0.5)]", size, "qwen3")[
        0
    ] == pytest.approx(0.5, abs=0.02)
    assert public.score_where2place(items[0], "[(120, 10)]", size, "qwen3")[0] == 0.0  # outside
    assert public.score_where2place(items[0], '[{"point_2d": [200, 500]}]', size, "qwen3")[
        0
    ] == pytest.approx(1.0, abs=0.02)
    s, status, _ = public.score_where2place(items[0], "nowhere", size, "qwen3")
    assert (s, status) == (0.0, "unparseable")


class _Canned:
    def __init__(self, checkpoint, device="cpu"):
        self.checkpoint = checkpoint

    def answer(self, images, question, max_new_tokens):
        return "(B)" if "pictures" in question or "closer" in question else "[(0.2, 0.3)]"


@pytest.mark.parametrize("bench", ["cvbench", "where2place"])
def test_run_bench_end_to_end(bench, cvbench, where2place, tiny_checkpoint, monkeypatch, tmp_path):
    from embodia.configs.eval import BenchConfig
    from embodia.evaluation import answerer

    monkeypatch.setattr(answerer, "Answerer", _Canned)
    data = cvbench if bench == "cvbench" else where2place
    out = run_bench(
        BenchConfig(checkpoint=tiny_checkpoint, benchmark=bench, data=data, output=tmp_path / bench)
    )
    res = json.loads((out / "results.json").read_text())["results"]
    if bench == "cvbench":
        assert res["overall"]["successes"] == 2 and res["unparseable"] == 1  # "[(0.2, 0.3)]"
        assert res["headline"]["Omni3D accuracy"] == 1.0
    else:
        assert res["overall"]["rate"] == pytest.approx(1.0, abs=0.02)
    assert (out / "report.md").is_file() and (out / "accuracy_per_category.png").is_file()
