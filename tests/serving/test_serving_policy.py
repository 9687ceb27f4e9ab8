"""Policy: observation validation, normalisation in and out, policy.json, text and depth."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from serving_helpers import EchoModel, make_obs

from embodia.models.action_space import SAWYER, TEMPLATE_DIM
from embodia.observation import ObservationError
from embodia.policy import Policy, UnsupportedRequest
from embodia.policy_config import POLICY_FILE, PolicyConfig, PolicyConfigError
from embodia.serving.demo import SAWYER_STATS, demo_config

LOW = np.array(SAWYER_STATS["observation.state"]["q01"])
HIGH = np.array(SAWYER_STATS["observation.state"]["q99"])


def echo_policy(**kw) -> Policy:
    return Policy(EchoModel(), demo_config(), **kw)


# ---------------------------------------------------------------------- normalisation


def test_state_normalised_in_actions_unnormalised_out():
    """State q01 -> -1, q99 -> +1 in the template's Sawyer slots (zero elsewhere); the model's
    template output comes back through the *action* stats, only the Sawyer slots kept."""
    policy = echo_policy()
    state = LOW + (HIGH - LOW) * np.array([0.0, 1.0, 0.5, 0.25])
    out = policy.infer(make_obs(state=state.astype(np.float32)))
    sample = policy.model.calls[-1][0][0]
    expected = np.zeros(TEMPLATE_DIM, np.float32)
    expected[SAWYER.indices] = [-1.0, 1.0, 0.0, -0.5]
    np.testing.assert_allclose(sample.state, expected, atol=1e-6)
    np.testing.assert_array_equal(sample.dof_mask, SAWYER.dof_mask)
    # the echo returns the normalised state as the action; action stats are [-1, 1] -> identity,
    # and slot 19 (step counter, not Sawyer's) must not leak into the robot's 4 dims
    assert out["actions"].shape == (8, 4) and out["actions"].dtype == np.float32
    np.testing.assert_allclose(out["actions"], np.tile([-1.0, 1.0, 0.0, -0.5], (8, 1)), atol=1e-6)


def test_actions_use_the_action_stats():
    stats = {
        "observation.state": SAWYER_STATS["observation.state"],
        "action": {"q01": [0.0, 0.0, 0.0, 10.0], "q99": [2.0, 4.0, 6.0, 10.0]},  # gripper constant
    }
    from embodia.data.normalize import QuantileNormalizer

    cfg = PolicyConfig(
        SAWYER.name,
        ("corner", "gripperPOV"),
        QuantileNormalizer(QuantileNormalizer.from_stats_json(stats).stats).to_dict(),
    )
    policy = Policy(EchoModel(), cfg)
    state = LOW + (HIGH - LOW) * np.array([0.0, 1.0, 0.5, 0.5])  # normalised [-1, 1, 0, 0]
    out = policy.infer(make_obs(state=state))
    np.testing.assert_allclose(out["actions"][0], [0.0, 4.0, 3.0, 10.0], atol=1e-5)


def test_state_outside_the_quantiles_is_clipped():
    policy = echo_policy()
    policy.infer(make_obs(state=(HIGH + 5).astype(np.float32)))
    assert np.abs(policy.model.calls[-1][0][0].state).max() <= 1.0


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda o: o.pop("state"), "missing 'state'"),
        (lambda o: o.pop("prompt"), "'prompt' must be a non-empty string"),
        (lambda o: o.update(prompt=""), "'prompt' must be a non-empty string"),
        (lambda o: o.pop("images"), "'images' must be a dict"),
        (lambda o: o["images"].pop("gripperPOV"), r"lacks camera\(s\) \['gripperPOV'\]"),
        (lambda o: o.update(state=np.zeros(5, np.float32)), r"shape \(4,\)"),
        (lambda o: o.update(state=np.zeros((1, 4), np.float32)), r"shape \(4,\)"),
        (lambda o: o.update(state=np.array(["a", "b", "c", "d"])), "must be a float array"),
        (lambda o: o.update(state=[[1.0], [1.0, 2.0]]), "not a numeric array"),
        (
            lambda o: o.update(state=np.array([0, np.nan, 0, 0])),
            r"NaN or inf at flat index\(es\) \[1\]",
        ),
        (lambda o: o.update(state=np.array([0, 0, np.inf, 0])), "NaN or inf"),
        (lambda o: o["images"].update(corner=np.zeros((8, 8, 3), np.float32)), "uint8"),
        (lambda o: o["images"].update(corner=np.zeros((3, 8, 8), np.uint8)), r"\(H, W, 3\)"),
        (lambda o: o["images"].update(corner=np.zeros((8, 8, 4), np.uint8)), r"\(H, W, 3\)"),
        (lambda o: o["images"].update(corner=np.zeros((0, 8, 3), np.uint8)), "each side"),
        (lambda o: o["images"].update(corner=[[0, 0, 0]]), "must be a uint8"),
        (lambda o: o.update(mode="diffusion"), "'mode' must be one of"),
        (lambda o: o.update(mode="fast"), "FAST tokenizer"),
        (lambda o: o.update(levels=["subtask"]), "must include 'actions'"),
        (lambda o: o.update(levels=["plan", "actions"]), r"unknown level\(s\) \['plan'\]"),
        (lambda o: o.update(levels="actions"), "non-empty list"),
    ],
)
def test_bad_observations_are_refused_clearly(mutate, match):
    obs = make_obs()
    mutate(obs)
    with pytest.raises((ObservationError, UnsupportedRequest), match=match):
        echo_policy().infer(obs)


def test_not_a_dict():
    with pytest.raises(ObservationError, match="must be a dict"):
        echo_policy().infer([1, 2])


def test_extra_keys_and_cameras_are_ignored_and_order_kept():
    policy = echo_policy()
    obs = make_obs()
    corner = obs["images"]["corner"]
    obs["images"] = {"gripperPOV": obs["images"]["gripperPOV"], "topview": corner, "corner": corner}
    obs["something_else"] = 3
    policy.infer(obs)
    images = policy.model.calls[-1][0][0].images
    assert len(images) == 2 and images[0] is not None
    np.testing.assert_array_equal(images[0], corner)  # training order: corner first


def test_levels_and_cot_fields():
    policy = echo_policy()
    out = policy.infer({**make_obs(), "levels": ["actions", "reasoning", "subtask"]})
    assert policy.model.calls[-1][2] == ["reasoning", "subtask", "actions"]  # canonical order
    assert out["reasoning"] == "the puck is left" and out["subtask"] == "grasp the puck"


def test_aliases_map_flat_robot_keys():
    cfg = demo_config()
    cfg.aliases = {
        "observation/image": "images/corner",
        "observation/wrist": "images/gripperPOV",
        "observation/state": "state",
    }
    policy = Policy(EchoModel(), PolicyConfig.from_dict(cfg.to_dict()))
    obs = make_obs()
    flat = {
        "observation/image": obs["images"]["corner"],
        "observation/wrist": obs["images"]["gripperPOV"],
        "observation/state": obs["state"],
        "prompt": "go",
    }
    assert policy.infer(flat)["actions"].shape == (8, 4)


# ---------------------------------------------------------------------- text and depth


def test_text_requests():
    policy = echo_policy()
    out = policy.text({**make_obs(), "levels": ["subtask"]})
    assert out == {"text": "Subtask: grasp the puck", "subtask": "grasp the puck"}
    assert policy.model.calls[-1][2] == ["subtask", "actions"]  # the prompt asks as in training
    vqa = policy.text({"images": {"topview": make_obs()["images"]["corner"]}, "question": "what?"})
    assert vqa["text"] == "Subtask: grasp the puck"
    assert policy.model.calls[-1][0][0].mode == "text"
    with pytest.raises(ObservationError, match="drop 'actions'"):
        policy.text({**make_obs(), "levels": ["actions"]})
    with pytest.raises(ObservationError, match="max_new_tokens"):
        policy.text({**make_obs(), "max_new_tokens": 10_000})


def test_depth_unsupported_without_generator():
    with pytest.raises(UnsupportedRequest, match="no depth generator"):
        echo_policy().depth(make_obs())


def test_depth_with_a_generator():
    model = EchoModel()
    maps = torch.stack([torch.full((5, 6), 1.5), torch.full((5, 6), 2.0)])  # (N images, R, R)
    model.generate_depth = lambda samples, generator=None: SimpleNamespace(depth=maps, rows=[0, 0])
    out = Policy(model, demo_config()).depth(make_obs())
    assert out["units"] == "m" and set(out["depth"]) == {"corner", "gripperPOV"}
    assert (
        out["depth"]["gripperPOV"].dtype == np.float32 and out["depth"]["gripperPOV"][0, 0] == 2.0
    )


# ---------------------------------------------------------------------- policy.json


def test_config_round_trip(tmp_path):
    cfg = demo_config()
    cfg.save(tmp_path)
    assert PolicyConfig.load(tmp_path) == cfg
    assert json.loads((tmp_path / POLICY_FILE).read_text())["embodiment"] == SAWYER.name


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(PolicyConfigError, match=r"no policy\.json"):
        PolicyConfig.load(tmp_path)
    data = demo_config().to_dict()
    for field, match in [
        ("cameras", r"missing field\(s\) \['cameras'\]"),
        ("normalizer", r"missing field\(s\) \['normalizer'\]"),
    ]:
        broken = {k: v for k, v in data.items() if k != field}
        (tmp_path / POLICY_FILE).write_text(json.dumps(broken))
        with pytest.raises(PolicyConfigError, match=match):
            PolicyConfig.load(tmp_path)
    (tmp_path / POLICY_FILE).write_text(json.dumps({**data, "camera": ["x"]}))
    with pytest.raises(PolicyConfigError, match=r"unknown field\(s\) \['camera'\]"):
        PolicyConfig.load(tmp_path)
    (tmp_path / POLICY_FILE).write_text("{not json")
    with pytest.raises(PolicyConfigError, match="not valid JSON"):
        PolicyConfig.load(tmp_path)
    with pytest.raises(PolicyConfigError, match="unknown embodiment"):
        PolicyConfig.from_dict({**data, "embodiment": "ufo"})
    short = {"kind": "quantile", "stats": {"observation.state": {"q01": [0.0], "q99": [1.0, 2.0]}}}
    with pytest.raises(PolicyConfigError, match=r"normaliser does not fit|normalizer"):
        PolicyConfig.from_dict({**data, "normalizer": short})


def test_real_checkpoint_loads_and_acts(policy):
    """The tiny random-weights checkpoint: robot-unit chunk of the model's horizon, in range."""
    out = policy.infer(make_obs())
    assert out["actions"].shape == (32, 4) and out["actions"].dtype == np.float32
    assert np.isfinite(out["actions"]).all()
    # the template output is clipped to [-1, 1] by nothing; the demo action stats are [-1, 1]
    assert out["valid"] is True and isinstance(out["text"], str)


def test_infer_batch_matches_single_inference_per_observation():
    """Several environments in one model call: each gets the chunk its own observation gives."""
    policy = echo_policy()
    states = [
        LOW + (HIGH - LOW) * np.array(f, dtype=np.float32)
        for f in ([0, 1, 0.5, 0.25], [1, 0, 0.5, 0.75])
    ]
    batch = policy.infer_batch([make_obs(state=s.astype(np.float32)) for s in states])
    assert len(batch) == 2 and len(policy.model.calls[-1][0]) == 2  # one call, two samples
    for out, s in zip(batch, states, strict=True):
        single = policy.infer(make_obs(state=s.astype(np.float32)))
        np.testing.assert_allclose(out["actions"], single["actions"], atol=1e-6)
    with pytest.raises(ObservationError, match="share"):
        policy.infer_batch([make_obs(), {**make_obs(), "mode": "fast"}])


def test_a_seeded_observation_gets_the_same_chunk_in_any_batch(policy):
    """``"seed"`` fixes the flow noise of that observation alone: alone or batched with others,
    the chunk is the same; another seed gives another chunk; a bad seed is refused."""
    obs = make_obs()
    alone = policy.infer({**obs, "seed": 7})["actions"]
    batched = policy.infer_batch(
        [{**make_obs(np.random.default_rng(3)), "seed": 1}, {**obs, "seed": 7}]
    )
    np.testing.assert_allclose(batched[1]["actions"], alone, atol=1e-5)
    other = policy.infer({**obs, "seed": 8})["actions"]
    assert np.abs(other - alone).max() > 1e-3
    for bad in (-1, 1.5, "7", True):
        with pytest.raises(ObservationError, match="'seed' must be an int"):
            policy.infer({**obs, "seed": bad})


def test_flow_noise_scale_zero_gives_one_chunk_per_observation(policy):
    """``flow_noise_scale`` scales the starting noise: at 0 every seed gives the same chunk (the
    flow from the distribution's centre), between 0 and 1 another chunk than at 1; a negative or
    non-numeric scale is refused naming the field."""
    obs = make_obs()
    full = policy.infer({**obs, "seed": 7})["actions"]
    try:
        policy.config.flow_noise_scale = 0.0
        zero = [policy.infer({**obs, "seed": s})["actions"] for s in (7, 8)]
        policy.config.flow_noise_scale = 0.5
        half = policy.infer({**obs, "seed": 7})["actions"]
    finally:
        policy.config.flow_noise_scale = 1.0
    np.testing.assert_allclose(zero[0], zero[1], atol=1e-6)
    assert np.abs(half - full).max() > 1e-4 and np.abs(half - zero[0]).max() > 1e-4
    data = demo_config().to_dict()
    for bad in (-0.5, "1", True, float("nan")):
        with pytest.raises(PolicyConfigError, match="flow_noise_scale"):
            PolicyConfig.from_dict({**data, "flow_noise_scale": bad})


def test_a_trained_checkpoint_answers_reasoning_subtask_and_actions_in_one_call(tmp_path):
    """Not a stub: a tiny model trained (to memorisation) on one Uni-CoT sample, saved and loaded
    as a checkpoint, returns its reasoning, its subtask and a chunk from a single action request."""
    from embodia.serving.demo import demo_policy

    trained = demo_policy()
    model = trained.model.train()
    obs = make_obs(np.random.default_rng(3))
    sample = trained.reader.action_sample(obs, "flow")
    sample.reasoning = "The drawer is 0.21 m away: 15 cm ahead of the gripper."
    sample.subtask = "push the drawer closed"
    sample.actions = np.zeros((model.cfg.action.horizon, sample.state.shape[0]), np.float32)
    batch = model.collate([sample])  # no rng: no level is dropped
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        losses = model.compute_loss(batch, gen)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    model.eval()
    policy = Policy.load(trained.save(tmp_path / "ckpt"))
    out = policy.infer({**obs, "levels": ["reasoning", "subtask", "actions"], "seed": 0})
    assert out["reasoning"] == sample.reasoning, out["text"]
    assert out["subtask"] == sample.subtask
    assert out["actions"].shape == (model.cfg.action.horizon, 4) and out["valid"]
