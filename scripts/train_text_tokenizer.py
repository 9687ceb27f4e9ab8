"""Regenerate the presets' shipped base tokenizer from embodia's own text.

    python scripts/train_text_tokenizer.py            # rewrite src/embodia/assets/tokenizer/
    python scripts/train_text_tokenizer.py --check    # exit 1 if the shipped file is stale

Run it after changing the task catalog, the QA generator or the corpus (the test suite fails
until you do). Training is deterministic, so running it twice gives a byte-identical file. Note
that a new vocabulary shifts every special token's id: checkpoints of the presets trained with the
old file no longer match it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embodia.models.text_tokenizer import (
    BASE_VOCAB_SIZE,
    serialize_base_tokenizer,
    train_base_tokenizer,
)
from embodia.models.tokenizer_corpus import corpus

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src/embodia/assets/tokenizer/tokenizer.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=BASE_VOCAB_SIZE,
        help="base vocabulary cap (training stops earlier once every corpus word is one token)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="only compare with --output; exit 1 if it differs"
    )
    args = parser.parse_args(argv)

    texts = corpus()
    tokenizer = train_base_tokenizer(texts, args.vocab_size)
    text = serialize_base_tokenizer(tokenizer)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is stale: run scripts/train_text_tokenizer.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any platform
    size_kb = len(text.encode("utf-8")) / 1024
    print(
        f"wrote {args.output}: {tokenizer.get_vocab_size()} base tokens from {len(texts)} texts, "
        f"{size_kb:.1f} KiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
