"""Attention masks for the Uni-CoT sequence: one rule set for training and cached sampling.

Every position has a kind. Text-like tokens (prompt, images, proprioception, chain-of-thought,
answers) attend causally. FAST action tokens are text too, but flow-action tokens never see them:
a flow chunk must be predicted from the same context whether or not discrete actions were also
decoded, so training with both targets in one sequence matches inference in either mode. Flow-action
tokens see the whole prefix and each other (bidirectional, WALL-OSS's first release) or only earlier
action tokens (causal), by config. Nothing before the action tokens ever sees them.
"""

from __future__ import annotations

import torch

PAD, TEXT, FAST, ACTION = 0, 1, 2, 3


def action_readable(kinds: torch.Tensor) -> torch.Tensor:
    """(B, S) True where an action query may read a key of the prefix: every real token except
    FAST tokens (and other action slots, which are governed by ``action_attention``). The one
    statement of this rule: the in-backbone expert's masks below and GEM-VLA's DiT expert's
    memory mask all call it."""
    return (kinds != PAD) & (kinds != FAST) & (kinds != ACTION)


def sequence_mask(kinds: torch.Tensor, action_attention: str = "bidirectional") -> torch.Tensor:
    """Boolean (B, 1, S, S) mask, True = may attend, for a whole sequence of token ``kinds``."""
    _b, s = kinds.shape
    device = kinds.device
    causal = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    key_valid = kinds != PAD
    allowed = causal[None] & key_valid[:, None, :]
    is_action_q = (kinds == ACTION)[:, :, None]
    is_action_k = (kinds == ACTION)[:, None, :]
    readable_k = action_readable(kinds)[:, None, :]
    action_rows = causal[None] & (readable_k | is_action_k)  # causal: earlier action slots
    if action_attention == "bidirectional":
        action_rows = action_rows | is_action_k
    allowed = torch.where(is_action_q, action_rows, allowed & ~is_action_k)
    # a padding query attends to itself only, so no softmax row is empty
    eye = torch.eye(s, dtype=torch.bool, device=device)[None]
    allowed = allowed | (eye & (kinds == PAD)[:, :, None])
    return allowed[:, None]


def action_query_mask(
    prefix_kinds: torch.Tensor, horizon: int, action_attention: str = "bidirectional"
) -> torch.Tensor:
    """(B, 1, H, P + H) mask for H action queries over a cached prefix plus themselves.

    Equal, row for row, to the action rows of :func:`sequence_mask` on ``prefix + actions``.
    """
    b = prefix_kinds.shape[0]
    device = prefix_kinds.device
    prefix_part = action_readable(prefix_kinds)[:, None, :].expand(b, horizon, -1)
    if action_attention == "bidirectional":
        action_part = torch.ones(horizon, horizon, dtype=torch.bool, device=device)
    else:
        action_part = torch.ones(horizon, horizon, dtype=torch.bool, device=device).tril()
    return torch.cat([prefix_part, action_part[None].expand(b, -1, -1)], dim=-1)[:, None]


def for_implementation(mask: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """SDPA takes the boolean mask; eager attention adds a float mask to the scores."""
    if implementation == "sdpa":
        return mask
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~mask, torch.finfo(dtype).min)
