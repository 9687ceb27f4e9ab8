"""Feature schema for LeRobot v3 datasets: our typed view and its on-disk forms.

A feature is described three times on disk and this module is the single place that knows all three:

* ``meta/info.json`` "features": ``{"dtype", "shape", "names"[, "info"]}`` (LeRobot's own schema);
* the Arrow type of the matching column in ``data/*.parquet``;
* the Hugging Face ``datasets`` feature spec stored as JSON under the ``huggingface`` key of the
  parquet schema metadata, which ``datasets`` uses to turn image structs back into images.

Keeping the three in one file means the writer and reader can never disagree about them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"

DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILES_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILES_SIZE_IN_MB = 200

CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
SUBTASKS_PATH = "meta/subtasks.parquet"
REASONING_PATH = "meta/reasoning.parquet"  # ours: per-frame Uni-CoT reasoning (writer.py)

# Per-frame bookkeeping columns every LeRobot v3 data file carries (LeRobot's DEFAULT_FEATURES).
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# LeRobot looks up "subtask" strings through this column when it is declared as a feature.
SUBTASK_INDEX = "subtask_index"
SUBTASK_FEATURE: dict[str, Any] = {"dtype": "int64", "shape": [1], "names": None}
RESERVED_KEYS = frozenset([*INDEX_FEATURES, SUBTASK_INDEX, "task", "subtask", "reasoning"])

NUMERIC_DTYPES = ("float32", "float64", "int64", "bool")
DTYPES = ("video", "depth", "image", *NUMERIC_DTYPES)

# Depth is metric float32 in memory but lossless uint16 millimetres on disk.
DEPTH_SCALE_M = 0.001
DEPTH_MAX_M = 65535 * DEPTH_SCALE_M
DEPTH_INFO: dict[str, Any] = {"depth_unit": "mm", "depth_scale": DEPTH_SCALE_M, "invalid_value": 0}
IMAGE_NAMES = ["height", "width", "channels"]


class DatasetFormatError(ValueError):
    """A dataset file, field or value is missing or malformed; the message names which."""


@dataclass(frozen=True)
class Feature:
    """One per-frame signal of an episode.

    ``shape`` is the shape of a single frame: ``(H, W, 3)`` for "video"/"image", ``(H, W)`` for
    "depth" (metres), ``(D,)`` for a vector and ``(1,)`` (or ``()``) for a scalar. Scalars are
    stored as plain parquet columns, as LeRobot does, and come back as arrays of shape ``(T,)``.
    """

    dtype: str
    shape: tuple[int, ...]
    names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"Feature dtype {self.dtype!r} is not one of {DTYPES}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.dtype in ("video", "image") and (len(self.shape) != 3 or self.shape[2] != 3):
            raise ValueError(f"{self.dtype} feature shape must be (H, W, 3), got {self.shape}")
        if self.dtype == "depth" and len(self.shape) != 2:
            raise ValueError(f"depth feature shape must be (H, W), got {self.shape}")
        if self.dtype in NUMERIC_DTYPES and len(self.shape) > 1:
            raise ValueError(f"numeric feature shape must be (D,), (1,) or (), got {self.shape}")

    @property
    def is_scalar(self) -> bool:
        """True for one value per frame, stored as a plain column rather than a list column."""
        return self.dtype in NUMERIC_DTYPES and self.shape in ((), (1,))

    @property
    def is_visual(self) -> bool:
        return self.dtype in ("video", "image", "depth")


def validate_feature_key(key: str) -> None:
    """Reject keys LeRobot cannot represent: '/' splits flattened stats, reserved keys clash."""
    if "/" in key:
        raise ValueError(f"Feature key {key!r} must not contain '/'")
    if key in RESERVED_KEYS:
        raise ValueError(f"Feature key {key!r} is reserved by the LeRobot layout")


def feature_to_info(ft: Feature) -> dict[str, Any]:
    """The ``meta/info.json`` entry of a feature (video "info" is added later by the writer)."""
    if ft.dtype == "depth":
        h, w = ft.shape
        return {
            "dtype": "image",
            "shape": [h, w, 1],
            "names": IMAGE_NAMES,
            "info": dict(DEPTH_INFO),
        }
    if ft.dtype in ("video", "image"):
        return {"dtype": ft.dtype, "shape": list(ft.shape), "names": ft.names or IMAGE_NAMES}
    shape = [1] if ft.is_scalar else list(ft.shape)
    return {"dtype": ft.dtype, "shape": shape, "names": ft.names}


def feature_from_info(key: str, entry: Any, where: str) -> Feature:
    """Parse one ``info.json`` feature entry, naming the file and field on any problem."""
    field = f"features.{key}"
    if not isinstance(entry, dict):
        raise DatasetFormatError(f"{where}: field '{field}' must be an object, got {entry!r}")
    for name in ("dtype", "shape"):
        if name not in entry:
            raise DatasetFormatError(f"{where}: field '{field}.{name}' is missing")
    dtype, shape = entry["dtype"], entry["shape"]
    if not isinstance(shape, list | tuple) or not all(isinstance(s, int) for s in shape):
        raise DatasetFormatError(
            f"{where}: field '{field}.shape' must be a list of ints: {shape!r}"
        )
    names = entry.get("names")
    names = list(names) if isinstance(names, list | tuple) else None
    info = entry.get("info") or {}
    try:
        if dtype == "image" and isinstance(info, dict) and info.get("depth_unit") == "mm":
            if len(shape) != 3 or shape[2] != 1:
                raise ValueError(f"depth image shape must be [H, W, 1], got {shape}")
            return Feature("depth", (shape[0], shape[1]), ["height", "width"])
        if dtype in ("video", "image"):
            return Feature(dtype, tuple(shape), names)
        if dtype in NUMERIC_DTYPES:
            return Feature(dtype, tuple(shape), names)
    except ValueError as exc:
        raise DatasetFormatError(f"{where}: field '{field}': {exc}") from exc
    raise DatasetFormatError(f"{where}: field '{field}.dtype' has unsupported value {dtype!r}")


_ARROW_SCALARS = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def arrow_type(info_entry: dict[str, Any]) -> pa.DataType:
    """Arrow column type LeRobot's reader expects for an ``info.json`` feature entry."""
    dtype = info_entry["dtype"]
    if dtype == "image":
        return IMAGE_STRUCT
    scalar = _ARROW_SCALARS[dtype]
    shape = list(info_entry["shape"])
    return scalar if shape == [1] else pa.list_(scalar, shape[0])


def hf_feature_spec(info_entry: dict[str, Any]) -> dict[str, Any]:
    """The ``datasets`` feature spec; the older "Sequence" spelling is read by all versions."""
    dtype = info_entry["dtype"]
    if dtype == "image":
        return {"_type": "Image"}
    value = {"dtype": dtype, "_type": "Value"}
    if list(info_entry["shape"]) == [1]:
        return value
    return {"feature": value, "length": int(info_entry["shape"][0]), "_type": "Sequence"}


def data_schema(info_features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Schema of ``data/*.parquet``: every non-video feature, with the HF metadata attached."""
    fields, specs = [], {}
    for key, entry in info_features.items():
        if entry["dtype"] == "video":
            continue
        fields.append(pa.field(key, arrow_type(entry)))
        specs[key] = hf_feature_spec(entry)
    meta = {"huggingface": json.dumps({"info": {"features": specs}})}
    return pa.schema(fields, metadata=meta)


# ---- on-disk helpers shared by the writer and the reader ----
# Fixed so the same content gives the same bytes whichever pandas happens to be installed.
_PANDAS_VERSION = "2.2.3"


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path, root: Path | None = None) -> Any:
    name = path.relative_to(root) if root is not None else path
    if not path.is_file():
        raise DatasetFormatError(f"{name}: file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{name}: not valid JSON ({exc})") from exc


def write_parquet(table: pa.Table, path: Path) -> None:
    """Snappy + dictionary encoding, as LeRobot writes; deterministic for identical tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy", use_dictionary=True)


def read_parquet(path: Path, root: Path | None = None) -> pa.Table:
    name = path.relative_to(root) if root is not None else path
    if not path.is_file():
        raise DatasetFormatError(f"{name}: file is missing")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetFormatError(f"{name}: not a readable parquet file ({exc})") from exc


def require_columns(table: pa.Table, columns: list[str], name: str | Path) -> None:
    for col in columns:
        if col not in table.column_names:
            raise DatasetFormatError(f"{name}: column '{col}' is missing")


def indexed_strings_table(strings: list[str], index_name: str, value_name: str) -> pa.Table:
    """A table pandas reads as ``DataFrame({value_name: 0..n-1}, index=Index(strings,
    name=index_name))``, which is how LeRobot stores tasks (it looks tasks up by
    ``tasks.iloc[i].name``). Built with pyarrow alone so pandas is not a dependency."""
    pandas_meta = {
        "index_columns": [index_name],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": value_name,
                "field_name": value_name,
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": index_name,
                "field_name": index_name,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": _PANDAS_VERSION,
    }
    schema = pa.schema(
        [pa.field(value_name, pa.int64()), pa.field(index_name, pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.table(
        {value_name: list(range(len(strings))), index_name: list(strings)}, schema=schema
    )


def read_indexed_strings(path: Path, root: Path, index_name: str, value_name: str) -> list[str]:
    """Inverse of :func:`indexed_strings_table`; also accepts LeRobot's unnamed pandas index
    (``__index_level_0__``) or a plain string column."""
    table = read_parquet(path, root)
    name = path.relative_to(root)
    require_columns(table, [value_name], name)
    text_col = index_name if index_name in table.column_names else None
    if text_col is None:
        meta = (table.schema.metadata or {}).get(b"pandas")
        if meta:
            idx = [c for c in json.loads(meta).get("index_columns", []) if isinstance(c, str)]
            text_col = idx[0] if idx else None
    if text_col is None or text_col not in table.column_names:
        raise DatasetFormatError(
            f"{name}: column '{index_name}' (the {index_name} text) is missing"
        )
    order = table.column(value_name).to_pylist()
    texts = table.column(text_col).to_pylist()
    if sorted(order) != list(range(len(order))):
        raise DatasetFormatError(f"{name}: column '{value_name}' is not 0..{len(order) - 1}")
    out = [""] * len(order)
    for i, text in zip(order, texts, strict=True):
        out[i] = text
    return out
