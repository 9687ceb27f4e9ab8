"""How much of a dataset's embodied QA a blind guess answers: per category, the blind baseline's
accuracy on the test split (fitted on the train split, ``embodia.evaluation.blind``) and the
largest share one answer class takes within a question group.

    python benchmarks/qa_balance.py outputs/quickstart/data [outputs/older/data ...]

A category whose blind accuracy is high measures the answer prior, not the image; the data
engine's balancing (``embodia.data.engine.qa.balance``) is meant to keep it near 1/3 or lower
for every category but ``plan``. Prints one Markdown table per dataset.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from embodia.data.engine.qa import balance_group
from embodia.evaluation.blind import AnswerPrior, answer_class
from embodia.evaluation.qa import load_rows


def table(dataset: Path) -> list[str]:
    train, test = load_rows(dataset, "train"), load_rows(dataset, "test")
    prior = AnswerPrior(train)
    lines = [
        f"{dataset}: {len(train)} train / {len(test)} test questions",
        "",
        "| category | test questions | blind accuracy | largest answer share (train) |",
        "|---|---|---|---|",
    ]
    for category in sorted({r["category"] for r in test}):
        rows = [r for r in test if r["category"] == category]
        right = sum(prior.correct(r) for r in rows)
        groups: dict[tuple, Counter] = {}
        for r in train:
            if r["category"] == category:
                groups.setdefault(balance_group(r), Counter())[answer_class(r)] += 1
        shares = [max(c.values()) / sum(c.values()) for c in groups.values()]
        worst = f"{max(shares):.0%}" if shares else "-"
        lines.append(
            f"| {category} | {len(rows)} | {right}/{len(rows)} = {right / len(rows):.0%} | "
            f"{worst} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", type=Path, nargs="+")
    for dataset in ap.parse_args().datasets:
        print("\n".join(table(dataset)) + "\n")


if __name__ == "__main__":
    main()
