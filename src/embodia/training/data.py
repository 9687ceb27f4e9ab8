"""Training data: sources (LeRobot v3 episodes, GEM/Qwen conversation JSONL), a seeded mixture,
and a collator that turns samples into model batches.

Determinism: global sample number n of a stage fully determines which source, which item and all
of that sample's randomness (Uni-CoT level dropping, FAST/flow choice, flow time and noise), through
``SeedSequence((seed, stage, n))``. The order of samples therefore never depends on the number of
data-loader workers or processes, and resuming at step k simply starts at n = k * batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embodia.configs.train import DatasetSpec, StageConfig
from embodia.data.conversations import ConversationFormatError, read_conversations
from embodia.data.frame_cache import CacheRequest, FrameCache, open_frame_cache
from embodia.data.images import random_shift, resize_depth, resize_rgb
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import Embodiment, EmbodimentError, load_embodiment
from embodia.models.flow import sample_time
from embodia.models.noise import SEED_KEY
from embodia.models.sequence import DropConfig, EmbodiedSample, SequenceBuilder, collate
from embodia.training.streaming import (
    Position,
    ShardCaches,
    ShardSchedule,
    StreamConfig,
    cut_shards,
)


class DataError(ValueError):
    """A dataset is missing a file, field or value the run needs (the message names it)."""


def sample_rng(seed: int, stage: int, n: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence((seed, stage, n)))


class EpisodeSource:
    """Action samples (frame t: views, state, instruction, subtask, reasoning, the chunk t..t+H-1).

    Frames come from the shared :mod:`~embodia.data.frame_cache` (decoded once at the model's
    resolution), built on first use with a progress bar, so random sampling never decodes video.
    """

    kind = "episodes"

    def __init__(
        self,
        spec: DatasetSpec,
        horizon: int,
        image_size: int,
        with_depth: bool = False,
        cache_root: Path | None = None,
        progress: bool = True,
        stream: StreamConfig | None = None,
    ):
        self.spec = spec
        self.name = spec.label
        self.stream = stream
        self.horizon = horizon
        self.image_size = image_size
        self.cache_root, self.progress = cache_root, progress
        where = Path(spec.path) / "meta/info.json"
        try:
            self.ds = LeRobotV3Dataset(spec.path)
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"dataset {spec.path}: {exc}") from exc
        feats = self.ds.features
        visual = [k for k, f in feats.items() if f.dtype in ("video", "image")]
        self.cameras = list(spec.cameras) or visual
        if not self.cameras:
            raise DataError(f"{where}: no image or video features to train on")
        for role, key in [
            *(("camera", c) for c in self.cameras),
            ("state", spec.state_key),
            ("action", spec.action_key),
            *((("scene", spec.scene_key),) if spec.scene_key else ()),
        ]:
            if key not in feats:
                raise DataError(
                    f"{where}: no feature {key!r} for the {role} (it has {sorted(feats)})"
                )
            if role == "camera" and key not in visual:
                raise DataError(
                    f"{where}: camera {key!r} is a {feats[key].dtype!r} feature, not an image "
                    f"or video (image/video features: {visual})"
                )
        self.camera_names = self._camera_names(spec)
        self._check_aliases(spec)
        self.depth_keys = self._depth_keys(spec, feats, where) if with_depth else None
        try:
            self.embodiment: Embodiment = load_embodiment(spec.embodiment)
        except EmbodimentError as exc:
            raise DataError(f"dataset {spec.path}: {exc}") from exc
        emb = self.embodiment
        checks = (
            ("state", spec.state_key, emb.fits_state, emb.state_slots or emb.slots),
            ("action", spec.action_key, emb.fits_action, emb.slots),
        )
        for role, key, fits, slots in checks:
            width = feats[key].shape[-1] if feats[key].shape else 1
            if not fits(width):
                want = (
                    f"elements {list(emb.state_dims)} of it"
                    if role == "state" and emb.state_dims
                    else f"{len(slots)} dims ({list(slots)})"
                )
                raise DataError(
                    f"{where}: {role} feature {key!r} has {width} dims, but embodiment "
                    f"{emb.name!r} takes {want}"
                )
        self.scene_dims = self._scene_dims(spec, feats, where)
        try:
            self.normalizer = QuantileNormalizer.from_stats_json(self.ds.stats).subset(
                self.vector_keys
            )
        except (KeyError, ValueError) as exc:
            raise DataError(
                f"{Path(spec.path) / 'meta/stats.json'}: {exc}; compute the statistics with "
                f"`embodia data stats {spec.path}`"
            ) from exc
        try:
            episodes = self.ds.episode_indices(spec.split)
        except KeyError as exc:
            raise DataError(f"dataset {spec.path}: {exc.args[0]}") from exc
        if not episodes:
            raise DataError(f"{spec.path}: split {spec.split!r} has no episodes")
        self.episodes = episodes
        self.index = [
            (ep, t) for ep in episodes for t in range(int(self.ds.episodes[ep]["length"]))
        ]
        self.frames = None  # opened by open_frames(), once every source has been checked
        self.shards: list[tuple[int, ...]] = []  # streaming: see embodia.training.streaming
        self.shard_index: list[list[tuple[int, int]]] = []
        self.caches: ShardCaches | None = None

    @property
    def vector_keys(self) -> tuple[str, ...]:
        """The low-dimensional features a sample reads: state, action and the scene target."""
        spec = self.spec
        return (spec.state_key, spec.action_key, *((spec.scene_key,) if spec.scene_key else ()))

    @staticmethod
    def _scene_dims(spec: DatasetSpec, feats: dict, where: Path) -> list[int] | None:
        """Elements of the scene feature the scene head regresses (None = no scene target)."""
        if not spec.scene_key:
            if spec.scene_dims:
                raise DataError(
                    f"dataset {spec.path}: scene_dims {list(spec.scene_dims)} without a scene_key"
                )
            return None
        shape = feats[spec.scene_key].shape or (1,)
        if len(shape) != 1:
            raise DataError(
                f"{where}: scene feature {spec.scene_key!r} must be a vector, has shape {list(shape)}"
            )
        dims = list(spec.scene_dims) or list(range(shape[0]))
        bad = [d for d in dims if not 0 <= d < shape[0]]
        if bad:
            raise DataError(
                f"{where}: scene_dims {bad} are outside {spec.scene_key!r}, which has {shape[0]} "
                "elements"
            )
        return dims

    def _camera_names(self, spec: DatasetSpec) -> list[str]:
        """What a trained policy calls each camera (``policy.json``, requests, metadata)."""
        names = list(spec.camera_names) or [
            c.removeprefix("observation.images.") for c in self.cameras
        ]
        if len(names) != len(self.cameras) or len(set(names)) != len(names):
            raise DataError(
                f"dataset {spec.path}: camera_names {names} must name each of the "
                f"{len(self.cameras)} cameras {self.cameras} once"
            )
        return names

    def _check_aliases(self, spec: DatasetSpec) -> None:
        """Every alias must land on the state or on one of this dataset's camera names, or the
        served policy would refuse the requests it was configured for."""
        targets = {"state", *(f"images/{c}" for c in self.camera_names)}
        for key, target in spec.aliases.items():
            if target not in targets:
                raise DataError(
                    f"dataset {spec.path}: alias {key!r} -> {target!r} names no camera or "
                    f"state of this dataset (targets: {sorted(targets)})"
                )

    def _depth_keys(self, spec: DatasetSpec, feats: dict, where: Path) -> list[str] | None:
        """Depth features per camera: the spec's (each must exist), else the engine's
        ``observation.depth.<camera>`` if the dataset has them all, else None (no depth: the
        depth loss is masked for this dataset's samples, as GEM's mixture does)."""
        if spec.depth_keys:
            if len(spec.depth_keys) != len(self.cameras):
                raise DataError(
                    f"dataset {spec.path}: {len(spec.depth_keys)} depth_keys for "
                    f"{len(self.cameras)} cameras {self.cameras}"
                )
            missing = [k for k in spec.depth_keys if k not in feats]
            if missing:
                raise DataError(f"{where}: no depth feature {missing[0]!r}")
            return list(spec.depth_keys)
        keys = [c.replace("observation.images.", "observation.depth.", 1) for c in self.cameras]
        return keys if all(k in feats for k in keys) else None

    def _request(self, episodes: tuple[int, ...]) -> CacheRequest:
        spec = self.spec
        return CacheRequest(
            Path(spec.path),
            episodes,
            tuple(self.cameras),
            tuple(self.depth_keys or ()),
            self.vector_keys,
            self.image_size,
        )

    def open_frames(self) -> None:
        """Open the shared frame cache (building it with a progress bar on first use); when
        streaming, cut the split into shards whose caches open as training reaches them."""
        if self.stream is not None:
            self._open_shards(self.stream)
            return
        request = self._request(tuple(self.episodes))
        try:
            self.frames = open_frame_cache(self.ds, request, self.cache_root, self.progress)
        except ValueError as exc:
            raise DataError(str(exc)) from exc

    def _open_shards(self, stream: StreamConfig) -> None:
        self.shards = cut_shards(self.episodes, stream.shard_episodes)
        lengths = {ep: int(self.ds.episodes[ep]["length"]) for ep in self.episodes}
        self.shard_index = [
            [(ep, t) for ep in shard for t in range(lengths[ep])] for shard in self.shards
        ]
        s = self.image_size
        vector_dims = sum(int(np.prod(self.ds.features[k].shape or (1,))) for k in self.vector_keys)
        per_frame = (
            len(self.cameras) * s * s * 3
            + len(self.depth_keys or ()) * s * s * 2
            + 4 * vector_dims
            + 8
        )
        largest = sorted((len(ix) * per_frame for ix in self.shard_index), reverse=True)
        need = sum(largest[: 2 * stream.window])  # the current window and the next one
        if need > stream.budget_gb * 2**30:
            raise DataError(
                f"dataset {self.spec.path}: --frame-cache-budget-gb {stream.budget_gb} holds less "
                f"than two windows of {stream.window} shard(s) ({need / 2**30:.2f} GB at "
                f"{s} px): raise it, or lower --stream-window or --stream-shard-episodes"
            )

        def open_shard(n: int) -> FrameCache:
            try:
                return open_frame_cache(
                    self.ds, self._request(self.shards[n]), self.cache_root, False
                )
            except ValueError as exc:
                raise DataError(str(exc)) from exc

        self.caches = ShardCaches(open_shard, stream.budget_gb * 2**30)

    def __len__(self) -> int:
        return len(self.index)

    def actions(self, ep: int) -> np.ndarray:
        """One episode's actions in robot units (T, D)."""
        if self.frames is None:  # streaming: read the column, no frame needs decoding
            key = self.spec.action_key
            values = self.ds.load_episode(ep, keys=[key])[key]
            return np.asarray(values, dtype=np.float32).reshape(len(values), -1)
        rows = np.arange(self.frames.lengths[ep])
        return self.frames.vectors(self.spec.action_key, ep, rows)

    def reasoning(self, ep: int, t: int) -> str | None:
        """The frame's Uni-CoT reasoning text, if the dataset has them (``meta/reasoning.parquet``)."""
        texts = self.ds.reasoning
        return None if texts is None else texts[int(self.ds.episodes[ep]["dataset_from_index"]) + t]

    def get(self, i: int) -> dict:
        ep, t = self.index[i]
        return self._item(self.frames, ep, t)

    def get_streamed(
        self, shards: list[int], next_shards: list[int], rng: np.random.Generator
    ) -> dict:
        """A frame drawn uniformly from the window ``shards`` (one draw of ``rng``, as
        :meth:`get`'s index is); the next window's caches start building in the background."""
        assert self.caches is not None, "open_frames() first"
        sizes = np.cumsum([len(self.shard_index[s]) for s in shards])
        k = int(rng.integers(sizes[-1]))
        j = int(np.searchsorted(sizes, k, side="right"))
        ep, t = self.shard_index[shards[j]][k - (int(sizes[j - 1]) if j else 0)]
        cache = self.caches.get(shards[j], protect={*shards, *next_shards})
        self.caches.prefetch(next_shards)
        return self._item(cache, ep, t)

    def _item(self, f: FrameCache, ep: int, t: int) -> dict:
        n = f.lengths[ep]
        rows = np.minimum(np.arange(t, t + self.horizon), n - 1)  # pad by repeating the last action
        norm = self.normalizer
        state = norm.normalize(self.spec.state_key, f.vectors(self.spec.state_key, ep, rows[:1])[0])
        chunk = norm.normalize(self.spec.action_key, f.vectors(self.spec.action_key, ep, rows))
        scene = None
        if self.scene_dims is not None:
            key = self.spec.scene_key
            scene = norm.normalize(key, f.vectors(key, ep, rows[:1])[0])[self.scene_dims]
        return {
            "images": [f.image(c, ep, t) for c in self.cameras],
            "instruction": f.task(ep, t),
            "subtask": f.subtask(ep, t),
            "reasoning": self.reasoning(ep, t),
            "state": state,
            "chunk": chunk,
            "depths": [f.depth(k, ep, t) for k in self.depth_keys] if self.depth_keys else None,
            "scene": None if scene is None else scene.astype(np.float32),
        }


class ConversationSource:
    """VQA samples from GEM/Qwen JSONL rows: {image, conversations: [{from, value}, ...]}."""

    kind = "conversations"

    def __init__(self, path: Path, name: str, image_size: int, with_depth: bool = False):
        self.path = Path(path)
        self.name = name
        self.image_size = image_size
        self.with_depth = with_depth
        try:
            self.rows = read_conversations(self.path)
        except (ConversationFormatError, FileNotFoundError) as exc:
            raise DataError(str(exc)) from exc
        if not self.rows:
            raise DataError(f"{self.path}: no conversation rows")

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, i: int) -> dict:
        line_no, row = self.rows[i]
        image_path = self.path.parent / row["image"]
        try:
            with Image.open(image_path) as im:
                image = np.asarray(im.convert("RGB"))
        except (FileNotFoundError, OSError) as exc:
            raise DataError(
                f"{self.path}:{line_no}: cannot read image {image_path} ({exc})"
            ) from exc
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        depths = None
        if self.with_depth and row.get("depth"):  # uint16 millimetre PNG, 0 = invalid
            depth_path = self.path.parent / row["depth"]
            try:
                with Image.open(depth_path) as im:
                    mm = np.asarray(im).astype(np.float32)
            except (FileNotFoundError, OSError) as exc:
                raise DataError(
                    f"{self.path}:{line_no}: cannot read depth {depth_path} ({exc})"
                ) from exc
            depths = [resize_depth(mm / 1000.0, self.image_size)]
        return {
            "images": [resize_rgb(image, self.image_size)],
            "question": human.replace("<image>\n", "").replace("<image>", "").strip(),
            "answer": gpt,
            "depths": depths,
        }


def build_sources(
    specs: list[DatasetSpec],
    horizon: int,
    image_size: int,
    with_depth: bool = False,
    cache_root: Path | None = None,
    progress: bool = True,
    stream: StreamConfig | None = None,
) -> list:
    """Episodes datasets, plus their conversations/<split>.jsonl when the engine wrote one;
    ``stream`` streams every episodes dataset (:mod:`embodia.training.streaming`)."""
    sources: list = []
    for spec in specs:
        path = Path(spec.path)
        if spec.kind == "conversations":
            sources.append(ConversationSource(path, spec.label, image_size, with_depth))
            continue
        sources.append(
            EpisodeSource(spec, horizon, image_size, with_depth, cache_root, progress, stream)
        )
        conv = path / "conversations" / f"{spec.split}.jsonl"
        if conv.exists():
            sources.append(ConversationSource(conv, f"{spec.label}/qa", image_size, with_depth))
    labels = [s.name for s in sources]
    repeated = sorted({n for n in labels if labels.count(n) > 1})
    if repeated:
        raise DataError(
            f"two datasets are both called {repeated[0]!r} (their directory name): give each a "
            "'name' in the --dataset-config, so mixtures, statistics and robots stay apart"
        )
    # Every dataset has been checked (keys, widths, statistics) before any frame is decoded.
    for src in sources:
        if src.kind == "episodes":
            src.open_frames()
    return sources


@dataclass
class Mixture:
    """Sources with stage weights (by kind or by name) and the stage's action-mode weights."""

    sources: list
    weights: np.ndarray
    modes: list[str]
    mode_weights: np.ndarray

    @classmethod
    def for_stage(cls, sources: list, stage: StageConfig) -> Mixture:
        w = []
        for s in sources:
            w.append(stage.mixture.get(s.name, stage.mixture.get(s.kind, 0.0)))
        weights = np.asarray(w, dtype=np.float64)
        if weights.sum() <= 0:
            have = sorted({s.kind for s in sources} | {s.name for s in sources})
            raise DataError(
                f"stage {stage.name!r}: its mixture {stage.mixture} selects none of the "
                f"available data ({have})"
            )
        modes = list(stage.action_modes)
        mw = np.asarray([stage.action_modes[m] for m in modes], dtype=np.float64)
        return cls(sources, weights / weights.sum(), modes, mw / mw.sum())

    def kinds_used(self) -> set[str]:
        return {s.kind for s, w in zip(self.sources, self.weights, strict=True) if w > 0}


class StageDataset(torch.utils.data.Dataset):
    """Sample n of a stage -> an EmbodiedSample, plus per-sample flow time and noise."""

    def __init__(
        self,
        mixture: Mixture,
        seed: int,
        stage_index: int,
        length: int,
        fast_tokenizer,
        image_shift: int = 0,
        position: Position | None = None,
    ):
        self.image_shift = image_shift
        self.mixture = mixture
        self.seed = seed
        self.stage_index = stage_index
        self.length = length
        self.fast = fast_tokenizer
        self.position = position  # needed by streamed sources: which step and rank n is
        self._schedules: dict[tuple[int, int], tuple[ShardSchedule, int]] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, n: int) -> tuple[EmbodiedSample, int]:
        rng = sample_rng(self.seed, self.stage_index, n)
        mix = self.mixture
        which = int(rng.choice(len(mix.sources), p=mix.weights))
        src = mix.sources[which]
        if getattr(src, "stream", None) is not None:
            step, rank = self.position.step_and_rank(n)
            schedule, window_steps = self._schedule(which, rank)
            window = step // window_steps
            item = src.get_streamed(schedule.shards(window), schedule.shards(window + 1), rng)
        else:
            item = src.get(int(rng.integers(len(src))))
        sample_seed = int(rng.integers(2**31))
        if src.kind == "conversations":
            return EmbodiedSample(
                images=item["images"],
                instruction=item["question"],
                mode="text",
                answer=item["answer"],
                depths=item["depths"],
            ), sample_seed
        mode = mix.modes[rng.choice(len(mix.modes), p=mix.mode_weights)]
        emb = src.embodiment
        images, depths = item["images"], item["depths"]
        if self.image_shift:
            views = [
                random_shift([img] if depths is None else [img, depths[v]], self.image_shift, rng)
                for v, img in enumerate(images)
            ]
            images = [v[0] for v in views]
            depths = None if depths is None else [v[1] for v in views]
        sample = EmbodiedSample(
            images=images,
            instruction=item["instruction"],
            mode=mode,
            state=emb.state_to_template(item["state"]),
            dof_mask=emb.dof_mask,
            subtask=item["subtask"],
            reasoning=item["reasoning"],
            actions=emb.to_template(item["chunk"]),
            depths=depths,
            scene=item["scene"],
        )
        if mode == "fast":
            if self.fast is None:
                raise DataError("a stage asks for FAST actions but no FAST tokenizer is available")
            sample.fast_ids = self.fast.encode(item["chunk"])
        return sample, sample_seed

    def _schedule(self, source: int, rank: int) -> tuple[ShardSchedule, int]:
        """A streamed source's shard schedule for this stage and rank, and how many steps a
        window lasts: until about as many of its samples as the window has frames are drawn."""
        key = (source, rank)
        if key not in self._schedules:
            if self.position is None:
                raise DataError("a streamed dataset needs the sample positions (trainer bug)")
            src, pos = self.mixture.sources[source], self.position
            stream = src.stream
            schedule = ShardSchedule(
                len(src.shards),
                stream.window,
                self.seed,
                self.stage_index,
                src.name,
                rank,
                pos.world,
            )
            per_step = pos.global_batch / pos.world * float(self.mixture.weights[source])
            window_frames = stream.window * len(src) / len(src.shards)
            self._schedules[key] = (schedule, max(1, int(np.ceil(window_frames / per_step))))
        return self._schedules[key]


class Collator:
    """Picklable batch builder for data-loader workers (Uni-CoT dropping seeded per sample)."""

    def __init__(
        self,
        builder: SequenceBuilder,
        image_processor,
        image_size: int,
        template_dim: int,
        horizon: int,
        pad_id: int,
        drop: DropConfig,
        time_alpha: float,
        time_beta: float,
    ):
        self.builder = builder
        self.image_processor = image_processor
        self.image_size = image_size
        self.template_dim = template_dim
        self.horizon = horizon
        self.pad_id = pad_id
        self.drop = drop
        self.time_alpha, self.time_beta = time_alpha, time_beta

    def __call__(self, items: list[tuple[EmbodiedSample, int]]) -> dict[str, torch.Tensor]:
        samples = [s for s, _ in items]
        built = [self.builder.build(s, np.random.default_rng(seed), self.drop) for s, seed in items]
        batch = collate(
            samples,
            built,
            self.image_processor,
            self.image_size,
            self.template_dim,
            self.horizon,
            self.pad_id,
        )
        # flow time and noise per sample, from the sample's own seed: identical on any world size
        ts, noise = [], []
        for _, seed in items:
            g = torch.Generator().manual_seed(seed)
            ts.append(sample_time(1, self.time_alpha, self.time_beta, g)[0])
            noise.append(torch.randn(self.horizon, self.template_dim, generator=g))
        batch["flow_t"] = torch.stack(ts)
        batch["flow_noise"] = torch.stack(noise)
        # the other objectives draw their numbers from streams of this seed (models/noise.py)
        batch[SEED_KEY] = torch.tensor([seed for _, seed in items], dtype=torch.long)
        return batch


class StepSampler(torch.utils.data.Sampler):
    """Sample numbers for steps [start, end) of a stage, this process's share of each global batch."""

    def __init__(self, start_step: int, end_step: int, global_batch: int, rank: int, world: int):
        if global_batch % world:
            raise ValueError(
                f"--batch-size {global_batch} must be divisible by the {world} processes"
            )
        self.start, self.end = start_step, end_step
        self.global_batch, self.rank, self.world = global_batch, rank, world
        self.per_rank = global_batch // world

    def __iter__(self):
        for step in range(self.start, self.end):
            base = step * self.global_batch + self.rank * self.per_rank
            yield from range(base, base + self.per_rank)

    def __len__(self) -> int:
        return (self.end - self.start) * self.per_rank
