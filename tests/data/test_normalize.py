"""QuantileNormalizer: the exact mapping, its inverse, and loud failures on missing statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embodia.data.normalize import MissingStatsError, QuantileNormalizer

STATS = {
    "action": {
        "q01": [-2.0, 0.0, 5.0],
        "q99": [2.0, 10.0, 5.0],  # dim 2 is constant
        "mean": [0.0, 5.0, 5.0],
    },
    "observation.state": {"q01": [0.0], "q99": [4.0]},
    "no_quantiles": {"mean": [0.0], "std": [1.0]},
}


@pytest.fixture
def norm() -> QuantileNormalizer:
    return QuantileNormalizer.from_stats_json(STATS)


def test_quantiles_map_to_the_ends_and_midpoint_to_zero(norm: QuantileNormalizer) -> None:
    x = np.array([[-2.0, 0.0, 5.0], [2.0, 10.0, 5.0], [0.0, 5.0, 5.0]])
    np.testing.assert_allclose(norm.normalize("action", x), [[-1, -1, 0], [1, 1, 0], [0, 0, 0]])


def test_clipped_outside_the_quantiles_and_inverse_round_trips(norm: QuantileNormalizer) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform([-2, 0, 5], [2, 10, 5], size=(7, 5, 3))  # leading axes broadcast
    y = norm.normalize("action", x)
    assert y.shape == x.shape
    np.testing.assert_allclose(norm.unnormalize("action", y), x, atol=1e-12)
    far = norm.normalize("action", np.array([100.0, -100.0, 123.0]))
    np.testing.assert_array_equal(far, [1.0, -1.0, 0.0])  # constant dim: 0, never inf/nan
    # unnormalize is not clipped: model outputs beyond [-1, 1] stay meaningful
    np.testing.assert_allclose(norm.unnormalize("action", np.array([3.0, -3.0, 1.0])), [6, -10, 5])


def test_scalar_feature_broadcasts(norm: QuantileNormalizer) -> None:
    np.testing.assert_allclose(
        norm.normalize("observation.state", np.array([0.0, 2.0, 4.0])), [-1, 0, 1]
    )


def test_missing_key_names_it_and_lists_keys(norm: QuantileNormalizer) -> None:
    with pytest.raises(MissingStatsError) as info:
        norm.normalize("actions", np.zeros(3))
    msg = str(info.value)
    assert "'actions'" in msg and "'action'" in msg and "observation.state" in msg
    assert isinstance(info.value, KeyError)


def test_missing_stat_names_key_and_stat(norm: QuantileNormalizer) -> None:
    with pytest.raises(MissingStatsError, match=r"'no_quantiles'.*'q01'.*\['mean', 'std'\]"):
        norm.unnormalize("no_quantiles", np.zeros(1))


def test_wrong_dimension_is_an_error(norm: QuantileNormalizer) -> None:
    with pytest.raises(ValueError, match="dimension 3"):
        norm.normalize("action", np.zeros((4, 2)))


def test_bad_stats_are_rejected() -> None:
    bad = QuantileNormalizer.from_stats_json({"a": {"q01": [1.0], "q99": [0.0]}})
    with pytest.raises(ValueError, match="q99 < q01"):
        bad.normalize("a", np.zeros(1))
    nan = QuantileNormalizer.from_stats_json({"a": {"q01": [float("nan")], "q99": [0.0]}})
    with pytest.raises(ValueError, match="NaN"):
        nan.normalize("a", np.zeros(1))
    with pytest.raises(ValueError, match="must map feature keys"):
        QuantileNormalizer.from_stats_json({"a": [1, 2]})


def test_dict_and_file_round_trip(norm: QuantileNormalizer, tmp_path) -> None:
    data = json.loads(json.dumps(norm.to_dict()))  # really JSON-able
    again = QuantileNormalizer.from_dict(data)
    x = np.array([1.0, 3.0, 5.0])
    np.testing.assert_array_equal(again.normalize("action", x), norm.normalize("action", x))
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(STATS))
    from_file = QuantileNormalizer.from_stats_json(path)
    np.testing.assert_array_equal(from_file.normalize("action", x), norm.normalize("action", x))
    with pytest.raises(ValueError, match="kind"):
        QuantileNormalizer.from_dict({"stats": {}})
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        QuantileNormalizer.from_stats_json(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"stats\.json"):
        QuantileNormalizer.from_stats_json(path)


def test_subset_keeps_only_named_keys(norm: QuantileNormalizer) -> None:
    sub = norm.subset(["action"])
    assert list(sub.stats) == ["action"]
    with pytest.raises(MissingStatsError, match="'gripper'"):
        norm.subset(["gripper"])
