"""GEM / Qwen conversation JSONL: one reader for training, evaluation and the contact sheet.

Rows look like ``{"image": "images/...png", "depth": "...png", "conversations": [{"from": "human",
"value": "<image>\\n..."}, {"from": "gpt", "value": ...}], ...}``. Every problem is reported with
the file, the line number and the field, and nothing is skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ConversationFormatError(ValueError):
    """A JSONL row is not valid JSON or lacks a field (the message names file:line and field)."""


def read_conversations(
    path: Path, required: Sequence[str] = ("image", "conversations")
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line of ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such conversation file")
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConversationFormatError(
                    f"{path}:{line_no}: not valid JSON ({exc.msg})"
                ) from exc
            if not isinstance(row, dict):
                raise ConversationFormatError(f"{path}:{line_no}: a row must be a JSON object")
            for key in required:
                if key not in row:
                    raise ConversationFormatError(f"{path}:{line_no}: missing field {key!r}")
            convs = row.get("conversations")
            if "conversations" in required and (not isinstance(convs, list) or len(convs) < 2):
                raise ConversationFormatError(
                    f"{path}:{line_no}: field 'conversations' needs a human and a gpt turn"
                )
            rows.append((line_no, row))
    return rows
