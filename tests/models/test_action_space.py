"""Embodiments place actions and state separately; the privileged-state control reads the
simulator's observation through the same Policy transform as a robot's proprioception."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import SAWYER, SAWYER_PRIVILEGED, TEMPLATE_DIM
from embodia.models.embodied import EmbodiedModel
from embodia.observation import ObservationError
from embodia.policy import Policy
from embodia.policy_config import PolicyConfig


def test_state_and_action_map_separately():
    env = np.arange(39, dtype=np.float32)
    state = SAWYER_PRIVILEGED.state_to_template(env)
    assert state.shape == (TEMPLATE_DIM,)
    assert state[:13].tolist() == [0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 36, 37, 38]
    assert not state[13:].any()
    action = SAWYER_PRIVILEGED.to_template(np.ones(4))
    assert np.array_equal(action, SAWYER.to_template(np.ones(4)))
    assert np.array_equal(SAWYER.state_to_template(np.ones(4)), SAWYER.to_template(np.ones(4)))
    assert SAWYER.fits_state(4) and not SAWYER.fits_state(39)
    assert SAWYER_PRIVILEGED.fits_state(39) and not SAWYER_PRIVILEGED.fits_state(13)
    with pytest.raises(ValueError, match="needs elements"):
        SAWYER_PRIVILEGED.state_to_template(np.zeros(10))


def test_privileged_policy_takes_the_simulator_state():
    stats = {
        "observation.environment_state": {"q01": np.full(39, -1.0), "q99": np.full(39, 1.0)},
        "action": {"q01": np.full(4, -1.0), "q99": np.full(4, 1.0)},
    }
    config = PolicyConfig(
        SAWYER_PRIVILEGED.name,
        ("corner",),
        QuantileNormalizer(stats).to_dict(),
        state_key="observation.environment_state",
    )
    policy = Policy(EmbodiedModel.from_preset("tiny").eval(), config)
    assert policy.metadata()["state_dim"] == 39
    obs = {
        "images": {"corner": np.zeros((64, 64, 3), np.uint8)},
        "state": np.zeros(39),
        "prompt": "close the drawer",
    }
    assert policy.infer(obs)["actions"].shape == (policy.horizon, 4)
    with pytest.raises(ObservationError, match=r"shape \(39,\)"):
        policy.infer({**obs, "state": np.zeros(4)})
