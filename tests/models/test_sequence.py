"""Uni-CoT sequences: levels are dropped at their configured rates (the actions never), and the
assistant side holds exactly the levels the prompt's Output line names."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import IGNORE, DropConfig, EmbodiedSample


@pytest.fixture(scope="module")
def builder():
    return EmbodiedModel.from_preset("tiny").builder


def _sample(mode="flow", reasoning="The drawer is 0.21 m away.", subtask="push the drawer"):
    return EmbodiedSample(
        images=[np.zeros((8, 8, 3), np.uint8)],
        instruction="Close the drawer.",
        mode=mode,
        reasoning=reasoning,
        subtask=subtask,
        fast_ids=[1, 2, 3],
    )


def test_levels_are_dropped_at_their_rates_and_the_actions_never(builder):
    drop = DropConfig(reasoning=0.5, subtask=0.3)
    rng = np.random.default_rng(0)
    n = 4000
    counts = {"reasoning": 0, "subtask": 0, "actions": 0}
    for _ in range(n):
        for level in builder.levels(_sample(), rng, drop):
            counts[level] += 1
    assert counts["actions"] == n
    for level, p_drop in (("reasoning", 0.5), ("subtask", 0.3)):
        kept = counts[level] / n
        sigma = np.sqrt(p_drop * (1 - p_drop) / n)
        assert abs(kept - (1 - p_drop)) < 4 * sigma, (level, kept)
    # a level the sample does not have is never asked for; at rate 1 a level is always dropped
    assert builder.levels(_sample(reasoning=None), rng, drop)[0] != "reasoning"
    always = DropConfig(reasoning=1.0, subtask=1.0)
    assert all(builder.levels(_sample(), rng, always) == ["actions"] for _ in range(50))
    assert builder.levels(_sample(), None, drop) == ["reasoning", "subtask", "actions"]


@pytest.mark.parametrize("mode", ["flow", "fast"])
def test_the_assistant_side_holds_the_levels_the_prompt_names(builder, mode):
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(60):
        built = builder.build(_sample(mode), rng, DropConfig(reasoning=0.5, subtask=0.5))
        text = builder.tok.decode(built.input_ids)
        output_line = text.split("Output: ")[1].split("<|im_end|>")[0]
        answer = builder.tok.decode(
            [i for i, lab in zip(built.input_ids, built.labels, strict=True) if lab != IGNORE]
        )
        named = output_line.split(", ")
        assert ("reasoning" in named) == answer.startswith("Reasoning: The drawer is 0.21 m away.")
        assert ("subtask" in named) == ("Subtask: push the drawer" in answer)
        assert named[-1] == {"flow": "flow actions", "fast": "FAST actions"}[mode]
        assert ("Action:" in answer) == (mode == "fast")
        seen.add(tuple(named))
    assert len(seen) == 4  # every combination of the two optional levels occurred
