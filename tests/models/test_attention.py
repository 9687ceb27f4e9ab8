"""The Uni-CoT attention rules, checked on a hand-built sequence of every token kind."""

from __future__ import annotations

import pytest
import torch

from embodia.models.attention import (
    ACTION,
    FAST,
    PAD,
    TEXT,
    action_query_mask,
    action_readable,
    sequence_mask,
)

# pad, prompt x3, FAST x2, text, action x3
KINDS = torch.tensor([[PAD, TEXT, TEXT, TEXT, FAST, FAST, TEXT, ACTION, ACTION, ACTION]])


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_action_tokens_see_the_prefix_but_no_fast_or_padding_and_nothing_sees_them(attention):
    m = sequence_mask(KINDS, attention)[0, 0]
    action, fast, pad = (KINDS[0] == k for k in (ACTION, FAST, PAD))
    rows = m[action]
    assert not rows[:, fast].any() and not rows[:, pad].any()
    assert rows[:, action_readable(KINDS)[0]].all()  # the whole readable prefix
    own = rows[:, action]
    expected = torch.ones(3, 3, dtype=torch.bool)
    assert torch.equal(own, expected if attention == "bidirectional" else expected.tril())
    assert not m[~action][:, action].any()  # no text, FAST or pad query sees an action slot
    assert m[KINDS[0] == TEXT][:, fast].any()  # text after FAST tokens does read them
    # the cached sampler's mask is the same rule, row for row
    cached = action_query_mask(KINDS[:, :7], 3, attention)[0, 0]
    assert torch.equal(cached, rows)
