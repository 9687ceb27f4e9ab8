"""The split FFN: routing passed with each call, layers that keep Hugging Face's block and names,
and gradient checkpointing that replays each call with its own routing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from embodia.configs.model import preset
from embodia.models.action_space import SAWYER
from embodia.models.backbone import QwenVLBackbone
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample
from embodia.models.split_ffn import SplitFFN, install_action_expert
from embodia.models.text_tokenizer import load_preset_tokenizer, special_ids


def make_sample(rng: np.random.Generator, mode: str, views: int) -> EmbodiedSample:
    return EmbodiedSample(
        images=[rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(views)],
        instruction="open the drawer",
        mode=mode,
        state=SAWYER.to_template(rng.normal(size=4)),
        dof_mask=SAWYER.dof_mask,
        answer="the drawer is red",
        actions=SAWYER.to_template(rng.normal(size=(32, 4)).astype(np.float32)),
    )


def test_a_routing_mask_of_the_wrong_shape_is_an_error():
    """SplitFFN used to fall back to the vision-language expert when the mask did not fit the
    input, silently sending action tokens through the wrong FFN."""
    ffn = SplitFFN(nn.Linear(8, 8), nn.Linear(8, 8))
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"routing mask has shape \(2, 4\).*\(2, 5\)"):
        ffn(x, torch.zeros(2, 4, dtype=torch.bool))
    out = ffn(x, torch.tensor([[False] * 4 + [True]] * 2))
    torch.testing.assert_close(out[:, -1], ffn.action(x[:, -1]))
    torch.testing.assert_close(out[:, :-1], ffn.vl(x[:, :-1]))
    torch.testing.assert_close(ffn(x), ffn.vl(x))


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3"])
def test_split_layers_keep_the_hugging_face_block_and_parameter_names(name):
    """With no token routed to the action expert, a split decoder stack computes exactly what
    Hugging Face's own layers compute, and its parameters keep their names (with the original FFN
    under ``mlp.vl``), so pretrained Qwen weights and old checkpoints load unchanged."""
    torch.manual_seed(0)
    cfg = preset(name)
    tok = load_preset_tokenizer(cfg.action.num_fast_tokens)
    plain = QwenVLBackbone.from_config(cfg, len(tok), special_ids(tok)).eval()
    split = copy.deepcopy(plain)
    install_action_expert(split.decoder_layers, split.hidden_size, 32)

    renamed = {
        k.replace(".mlp.vl.", ".mlp.") for k in split.state_dict() if ".mlp.action." not in k
    }
    assert renamed == set(plain.state_dict())

    emb = torch.randn(2, 7, plain.hidden_size)
    mask = torch.ones(2, 1, 7, 7, dtype=torch.bool).tril()
    pos = torch.arange(7)[None, None].expand(3, 2, 7)
    with torch.no_grad():
        want, _ = plain.decode(emb, mask, pos)
        got, _ = split.decode(emb, mask, pos)
        routed, _ = split.decode(emb, mask, pos, action_mask=torch.ones(2, 7, dtype=torch.bool))
    torch.testing.assert_close(got, want)
    assert not torch.allclose(routed, want)  # the mask does reach the FFNs
    with pytest.raises(ValueError, match="no action expert"):
        plain.decode(emb, mask, pos, action_mask=torch.ones(2, 7, dtype=torch.bool))


def test_gradient_checkpointing_replays_each_call_with_its_own_routing():
    """Routing used to be a mask set on a shared object before each forward pass. A second forward
    before the first one's backward (two losses summed, a second micro-batch) left the second
    call's mask set, so the first call's checkpoint recompute routed with the wrong mask. Now the
    mask is a keyword of the layer call, which the checkpoint keeps: gradients with checkpointing
    equal gradients without."""
    rng = np.random.default_rng(0)
    batches = []
    torch.manual_seed(0)
    model = EmbodiedModel.from_preset("tiny").train()
    for modes, views in [(("flow", "text"), 2), (("flow",), 1)]:
        batches.append(model.collate([make_sample(rng, m, views=views) for m in modes]))

    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        if checkpointing:
            model.backbone.hf.activation_checkpointing_enable()
        else:
            model.backbone.hf.activation_checkpointing_disable()
        gen = torch.Generator().manual_seed(1)
        loss = sum(model.compute_loss(b, gen)["loss"] for b in batches)
        loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    plain = gradients(False)
    replayed = gradients(True)
    assert any(".mlp.action." in k for k in plain)
    assert set(replayed) == set(plain)
    for k in plain:
        torch.testing.assert_close(replayed[k], plain[k], atol=1e-5, rtol=1e-4, msg=k)
