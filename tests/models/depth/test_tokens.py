"""The generator reads exactly the final-layer vision-token states of its own image."""

from __future__ import annotations

import numpy as np
import torch

from conftest import depth_model, random_sample
from embodia.models.depth.tokens import image_token_states, unpatchify_rgb
from embodia.models.sequence import preprocess_images


def test_image_token_states_split_in_sequence_order():
    pad = 7
    ids = torch.tensor([[1, 7, 7, 2, 7, 7, 3], [7, 7, 0, 0, 0, 0, 0]])
    hidden = torch.arange(14, dtype=torch.float32).view(2, 7, 1)
    grid = torch.tensor([[1, 2, 4], [1, 2, 4], [1, 2, 4]])  # 8 patches / merge 2x2 = 2 tokens
    states = image_token_states(hidden, ids, pad, grid, merge=2)
    assert [s.squeeze(-1).tolist() for s in states] == [[1, 2], [4, 5], [7, 8]]


def test_each_condition_depends_only_on_its_own_images_tokens():
    """Batches with 1 and 3 views per sample: the gradient of image k's condition reaches the
    hidden states at image k's vision tokens and nowhere else, and perturbing image k's tokens
    changes condition k only."""
    model = depth_model()
    rng = np.random.default_rng(0)
    batch = model.collate([random_sample(rng, views=1), random_sample(rng, views=3)])
    hidden = torch.randn(*batch["input_ids"].shape, model.backbone.hidden_size, requires_grad=True)
    head = model.aux_heads["depth"]
    cond = head.conditions(model, batch, hidden)
    n, t = cond.shape[:2]
    assert n == 4 and t == model.tokens_per_image
    is_image = batch["input_ids"] == model.special.image_pad
    positions = is_image.nonzero().tolist()  # row-major = image order
    for k in range(n):
        (grad,) = torch.autograd.grad(cond[k].sum(), hidden, retain_graph=True)
        touched = grad.abs().sum(-1) > 0
        own = torch.zeros_like(touched)
        for b, s in positions[k * t : (k + 1) * t]:
            own[b, s] = True
        assert torch.equal(touched, own), k
    with torch.no_grad():
        bumped = hidden.detach().clone()
        b, s = positions[2 * t + 3]  # a token of image 2 (sample 1, view 1)
        bumped[b, s] += 1.0
        new = head.conditions(model, batch, bumped)
        changed = (new - cond.detach()).abs().flatten(1).amax(1) > 0
    assert changed.tolist() == [False, False, True, False]


def test_the_token_map_is_row_major_over_the_merged_grid():
    """Vision-token k of an image sits at merged patch (k // w, k % w): the pixels its patch
    block holds are the ones the processor put in its rows."""
    model = depth_model()
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:32, 48:64] = 255  # merged patch (row 1, col 3) of a 4 x 4 grid (16 px per merged patch)
    out = preprocess_images([img], model.image_processor, 64)
    per_token = out["pixel_values"].view(16, 4, -1).mean(dim=(1, 2))
    assert int(per_token.argmax()) == 1 * 4 + 3


def test_unpatchify_recovers_the_image_the_backbone_saw():
    for name in ("tiny", "tiny-qwen3"):
        model = depth_model(name=name)
        rng = np.random.default_rng(1)
        imgs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
        out = preprocess_images(imgs, model.image_processor, 64)
        back = unpatchify_rgb(out["pixel_values"], out["image_grid_thw"], model.image_processor)
        for a, b in zip(imgs, back, strict=True):
            ref = torch.from_numpy(a).permute(2, 0, 1).float() / 255
            torch.testing.assert_close(b, ref, atol=2e-3, rtol=0)
