"""FAST action tokenizer: bounded round trip, compression, lenient decoding, persistence, and the
`embodia tokenizer fit` command end to end on a small LeRobot v3 dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embodia.cli import main as cli_main
from embodia.configs.tokenizer import FitConfig
from embodia.data.lerobot_v3 import Feature, LeRobotV3Dataset, consolidate, stage_episode
from embodia.data.normalize import QuantileNormalizer
from embodia.models.fast_fit import episode_chunks, run_fit
from embodia.models.fast_tokenizer import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    FastActionTokenizer,
    FastTokenizerFormatError,
)

H, D = 16, 3


def smooth_chunks(n: int, seed: int, horizon: int = H, dim: int = D) -> np.ndarray:
    """Sinusoids of low frequency plus an offset, inside [-1, 1]: like real action chunks."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, horizon)[None, :, None]
    amp = rng.uniform(0.1, 0.5, (n, 1, dim))
    freq = rng.uniform(0.2, 1.5, (n, 1, dim))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, dim))
    offset = rng.uniform(-0.4, 0.4, (n, 1, dim))
    return amp * np.sin(2 * np.pi * freq * t + phase) + offset


@pytest.fixture(scope="module")
def tok() -> FastActionTokenizer:
    return FastActionTokenizer.fit(smooth_chunks(600, seed=0), scale=10.0, vocab_size=256)


@pytest.mark.parametrize("scale", [5.0, 10.0, 40.0])
def test_round_trip_error_is_bounded_by_the_scale(scale: float) -> None:
    tok = FastActionTokenizer.fit(smooth_chunks(300, seed=1), scale=scale, vocab_size=512)
    test = smooth_chunks(100, seed=2)
    decoded = tok.decode_batch(tok.encode_batch(test))
    err = np.abs(decoded - test)
    # Rounding error is uniform in +-0.5/scale per coefficient; the orthonormal DCT keeps it at
    # ~0.29/scale RMS per value, so the max over all values stays around 1/scale.
    assert err.mean() < 0.3 / scale
    assert err.max() < 1.5 / scale


def test_compresses_smooth_chunks_and_ids_are_in_range(tok: FastActionTokenizer) -> None:
    ids = tok.encode_batch(smooth_chunks(100, seed=3))
    lengths = [len(i) for i in ids]
    assert np.mean(lengths) < H * D / 2
    assert max(lengths) < H * D
    flat = [i for row in ids for i in row]
    assert min(flat) >= 0 and max(flat) < tok.config.vocab_size
    assert tok.num_ids <= tok.config.vocab_size


def test_any_chunk_in_range_encodes_without_clipping(tok: FastActionTokenizer) -> None:
    """Even white noise and the extremes of [-1, 1] are representable (alphabet covers them)."""
    rng = np.random.default_rng(4)
    rough = np.concatenate(
        [rng.uniform(-1, 1, (20, H, D)), np.ones((1, H, D)), -np.ones((1, H, D))]
    )
    decoded = tok.decode_batch(tok.encode_batch(rough))
    assert np.abs(decoded - rough).max() < 1.5 / tok.config.scale


def test_encode_single_matches_batch_and_rejects_bad_shapes(tok: FastActionTokenizer) -> None:
    chunks = smooth_chunks(3, seed=5)
    assert [tok.encode(c) for c in chunks] == tok.encode_batch(chunks)
    with pytest.raises(ValueError, match="expects"):
        tok.encode(np.zeros((H + 1, D)))
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(np.full((H, D), np.nan))


def test_truncated_sequence_decodes_to_a_smooth_approximation(tok: FastActionTokenizer) -> None:
    chunk = smooth_chunks(1, seed=6)[0]
    ids = tok.encode(chunk)
    assert tok.decode_checked(ids).valid
    result = tok.decode_checked(ids[: len(ids) // 2])
    assert not result.valid and "set to 0" in result.problems[0]
    assert result.actions.shape == (H, D)
    # frequency-major order: what survives is the low-frequency part, so the shape is kept
    assert np.abs(result.actions - chunk).mean() < np.abs(chunk).mean()


@pytest.mark.parametrize(
    "ids, problem",
    [
        ([], "0 of"),
        ([-1, 10**9, 3], "unknown id"),
        (["x", None, 2.5], "unknown id"),
        ([0] * 1000, "dropped"),
    ],
)
def test_garbage_never_crashes(tok: FastActionTokenizer, ids: list, problem: str) -> None:
    result = tok.decode_checked(ids)
    assert result.actions.shape == (H, D) and np.isfinite(result.actions).all()
    assert not result.valid and any(problem in p for p in result.problems)
    np.testing.assert_array_equal(tok.decode(ids), result.actions)
    with pytest.raises(ValueError, match="malformed FAST sequence"):
        tok.decode(ids, strict=True)


def test_fit_is_deterministic() -> None:
    data = smooth_chunks(400, seed=7)
    a = FastActionTokenizer.fit(data, vocab_size=200, seed=3, max_chunks=300)
    b = FastActionTokenizer.fit(data, vocab_size=200, seed=3, max_chunks=300)
    test = smooth_chunks(20, seed=8)
    assert a.encode_batch(test) == b.encode_batch(test)
    assert a._bpe.to_str() == b._bpe.to_str()


def test_vocab_too_small_for_the_coefficients_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="raise vocab_size or lower scale"):
        FastActionTokenizer.fit(smooth_chunks(50, seed=9), scale=200.0, vocab_size=64)


def test_save_load_round_trip(tok: FastActionTokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "fast")
    assert sorted(p.name for p in (tmp_path / "fast").iterdir()) == [CONFIG_FILE, TOKENIZER_FILE]
    again = FastActionTokenizer.load(tmp_path / "fast")
    assert again.config == tok.config and again.coefficient_range == tok.coefficient_range
    test = smooth_chunks(30, seed=10)
    ids = tok.encode_batch(test)
    assert again.encode_batch(test) == ids
    np.testing.assert_array_equal(again.decode_batch(ids), tok.decode_batch(ids))


def test_load_errors_name_the_file_and_field(tok: FastActionTokenizer, tmp_path: Path) -> None:
    root = tmp_path / "fast"
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        FastActionTokenizer.load(root)
    tok.save(root)
    cfg_path, bpe_path = root / CONFIG_FILE, root / TOKENIZER_FILE
    good_cfg, good_bpe = cfg_path.read_text(), bpe_path.read_text()

    cfg_path.write_text(good_cfg[: len(good_cfg) // 2])
    with pytest.raises(FastTokenizerFormatError, match=f"{CONFIG_FILE}: not valid JSON"):
        FastActionTokenizer.load(root)

    meta = json.loads(good_cfg)
    del meta["config"]["horizon"]
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(FastTokenizerFormatError, match=r"'config\.horizon'"):
        FastActionTokenizer.load(root)

    cfg_path.write_text(good_cfg)
    bpe_path.write_text(good_bpe.replace('"merges"', '"mergez"', 1))
    with pytest.raises(FastTokenizerFormatError, match=f"{TOKENIZER_FILE}.*tokenizer_sha256"):
        FastActionTokenizer.load(root)

    bpe_path.unlink()
    with pytest.raises(FileNotFoundError, match=TOKENIZER_FILE):
        FastActionTokenizer.load(root)


# ---------------------------------------------------------------------- run_fit end to end

FEATURES = {"action": Feature("float32", (D,)), "observation.state": Feature("float32", (D,))}
EPISODES = {f"ep{i}": 30 + 7 * i for i in range(6)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six smooth episodes (actions in units of a few radians, not [-1, 1]): 4 train, 2 val."""
    root = tmp_path_factory.mktemp("fastds")
    for i, (key, length) in enumerate(EPISODES.items()):
        # Same distribution in every episode (a few periods each): the dataset's q01/q99, averaged
        # over episodes as LeRobot does, then match the true ones and clip little.
        t = np.arange(length)[:, None] / 3.0
        action = (2.0 * np.sin(t + np.arange(D) + i) + 1.0).astype(np.float32)
        frames = {"action": action, "observation.state": np.cumsum(action, axis=0)}
        stage_episode(root / "staging", key, frames, ["wave"] * length, FEATURES, fps=10)
    keys = list(EPISODES)
    consolidate(
        root / "staging",
        root / "ds",
        FEATURES,
        10,
        "toy",
        keys,
        splits={"train": keys[:4], "val": keys[4:]},
        progress=False,
    )
    return root / "ds"


def test_episode_chunks_pad_with_the_last_action() -> None:
    actions = np.arange(10.0)[:, None]
    chunks = episode_chunks(actions, horizon=4, stride=3)
    assert chunks.shape == (4, 4, 1)
    np.testing.assert_array_equal(
        chunks[:, :, 0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9] * 4]
    )


def test_run_fit_end_to_end(dataset: Path, tmp_path: Path) -> None:
    out = run_fit(
        FitConfig(
            dataset=dataset, output=tmp_path / "tok", horizon=H, vocab_size=128, progress=False
        )
    )
    report = json.loads((out / "fit_report.json").read_text())
    assert report["episodes_fit"] == 3 and report["episodes_heldout"] == 1
    ds = LeRobotV3Dataset(dataset)
    want_chunks = sum(-(-ds.episodes[i]["length"] // 4) for i in ds.episode_indices("train"))
    assert report["chunks_used"] + report["eval"]["chunks"] == want_chunks
    ev = report["eval"]
    assert report["evaluated_on"] == "heldout"
    assert 1 <= ev["mean_tokens_per_chunk"] < H * D
    assert ev["compression_ratio"] == pytest.approx(H * D / ev["mean_tokens_per_chunk"])
    assert ev["roundtrip_normalized"]["max_abs"] < 1.5 / report["scale"]
    # original units: the action spans ~4 units, so the error scales by ~2 (plus q01/q99 clipping)
    assert ev["roundtrip_original"]["mean_abs"] < 0.3
    assert 0 <= ev["clipped_fraction"] < 0.15
    # the saved tokenizer and the embedded normaliser reproduce the dataset's actions
    tok = FastActionTokenizer.load(out)
    norm = QuantileNormalizer.from_dict(report["normalizer"])
    raw = ds.load_episode(4)["action"][:H].astype(np.float64)
    back = norm.unnormalize("action", tok.decode(tok.encode(norm.normalize("action", raw))))
    assert np.abs(back - raw).max() < 0.5


def test_cli_fit_and_its_errors(dataset: Path, tmp_path: Path, capsys) -> None:
    args = ["tokenizer", "fit", "--dataset", str(dataset), "--output", str(tmp_path / "t")]
    small = ["--horizon", "8", "--vocab-size", "64", "--no-progress"]
    assert cli_main([*args, *small, "--split", "all", "--holdout", "0"]) == 0
    assert "FAST tokenizer" in capsys.readouterr().out
    report = json.loads((tmp_path / "t" / "fit_report.json").read_text())
    assert report["evaluated_on"] == "fit" and report["episodes_fit"] == 6
    assert FastActionTokenizer.load(tmp_path / "t").config.horizon == 8

    assert cli_main([*args, *small, "--key", "nope"]) == 2
    assert "no feature 'nope'" in capsys.readouterr().err
    assert cli_main([*args, *small, "--key", "observation.state", "--split", "val"]) == 0
    capsys.readouterr()
    assert cli_main([*args, *small, "--split", "test"]) == 2
    assert "split 'test'" in capsys.readouterr().err
