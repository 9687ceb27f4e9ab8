"""The text tokenizer of the built-in presets: byte-level BPE trained on embodia's own text.

The "tiny" and "small" presets build Qwen2.5-VL / Qwen3-VL backbones from scratch, so they need a
tokenizer that works offline and is shipped inside the package. It behaves like Qwen's where the
model code cares: byte-level BPE (any text encodes, nothing is unknown), digits split one by one
(coordinates and distances tokenise the same wherever they appear), Qwen's special tokens and chat
format, and the ``image_token`` / ``vision_start_token`` attributes Qwen processors read.

Token ids are laid out as: the trained base vocabulary, then :data:`QWEN_SPECIAL_TOKENS`, then
:data:`EMBODIA_SPECIAL_TOKENS`, then the FAST action tokens ``<|fast_0|>`` ... ``<|fast_{N-1}|>``,
so FAST token ``k`` is simply ``fast_start + k``.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

#: Default size of the trained base vocabulary (a cap: training stops earlier once every word of
#: the corpus is a single token).
BASE_VOCAB_SIZE = 4096
#: Default number of FAST action tokens (the size of FAST's BPE vocabulary over DCT coefficients).
NUM_FAST_TOKENS = 1024

#: Qwen's special tokens, in the order they follow the base vocabulary.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: embodia's slots: the proprioceptive state and a flow-matching action chunk.
EMBODIA_SPECIAL_TOKENS = ("<|propri|>", "<|action|>")

_FAST_PATTERN = re.compile(r"<\|fast_(\d+)\|>")

#: Qwen-style chat format. Content is a string or a list of parts (text, image, video, and
#: embodia's propri / action slots); images and videos expand to one pad token between vision
#: markers, which the Qwen processor then repeats once per visual token.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'propri' -%}"
    "{{- '<|propri|>' -}}"
    "{%- elif part['type'] == 'action' -%}"
    "{{- '<|action|>' -}}"
    "{%- elif part['type'] == 'text' -%}"
    "{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)


def fast_token(k: int) -> str:
    """The text of FAST action token ``k``."""
    return f"<|fast_{k}|>"


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Digits first, each on its own (so no merge can ever join digits or attach them to letters),
    # then GPT-2's byte-level split of words, punctuation runs and spaces.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def train_base_tokenizer(texts: Iterable[str], vocab_size: int = BASE_VOCAB_SIZE) -> Tokenizer:
    """Train the byte-level BPE base vocabulary (no special tokens) on ``texts``.

    All 256 bytes are in the initial alphabet, so every string encodes without unknown tokens.
    Training is deterministic: the same texts in the same order give the same vocabulary and merges.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def serialize_base_tokenizer(tokenizer: Tokenizer) -> str:
    """The shipped file's exact text (pretty JSON, trailing newline), so diffs stay readable."""
    return tokenizer.to_str(pretty=True) + "\n"


def base_tokenizer_path() -> resources.abc.Traversable:
    """The shipped base vocabulary, read from the installed package (never from the network)."""
    return resources.files("embodia") / "assets" / "tokenizer" / "tokenizer.json"


def load_base_tokenizer() -> Tokenizer:
    return Tokenizer.from_str(base_tokenizer_path().read_text(encoding="utf-8"))


def load_preset_tokenizer(num_fast_tokens: int = NUM_FAST_TOKENS) -> PreTrainedTokenizerFast:
    """The presets' tokenizer: the shipped base vocabulary plus all special tokens, in id order.

    The result saves with ``save_pretrained`` and reloads with ``AutoTokenizer.from_pretrained``
    (``local_files_only=True``) without any embodia code.
    """
    if num_fast_tokens < 0:
        raise ValueError(f"num_fast_tokens must be >= 0, got {num_fast_tokens}")
    base = load_base_tokenizer()
    specials = [
        *QWEN_SPECIAL_TOKENS,
        *EMBODIA_SPECIAL_TOKENS,
        *(fast_token(k) for k in range(num_fast_tokens)),
    ]
    # Added to the backend directly so ids follow the list order exactly; normalized=False keeps
    # them matched verbatim, and special=True lets decode(skip_special_tokens=True) drop them.
    base.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=base,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        # named tokens, as Qwen processors look them up (tokenizer.image_token, .image_token_id)
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        vision_start_token="<|vision_start|>",
        vision_end_token="<|vision_end|>",
        propri_token="<|propri|>",
        action_token="<|action|>",
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens, looked up once instead of by string in every training step."""

    pad: int
    eos: int
    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    image_pad: int
    video_pad: int
    propri: int
    action: int
    fast_start: int
    num_fast: int

    @property
    def fast_range(self) -> range:
        return range(self.fast_start, self.fast_start + self.num_fast)


_CACHE: weakref.WeakKeyDictionary[PreTrainedTokenizerFast, SpecialIds] = weakref.WeakKeyDictionary()


def special_ids(tokenizer: PreTrainedTokenizerFast) -> SpecialIds:
    """The tokenizer's :class:`SpecialIds` (computed on first use, then cached per tokenizer).

    Raises ``ValueError`` if a special token is missing or the FAST tokens are not one contiguous,
    ordered id range (decoding actions relies on ``id - fast_start`` being the FAST index).
    """
    cached = _CACHE.get(tokenizer)
    if cached is not None:
        return cached
    vocab = tokenizer.get_added_vocab()

    def id_of(token: str) -> int:
        if token not in vocab:
            raise ValueError(f"tokenizer has no special token {token!r}")
        return vocab[token]

    fast = sorted(
        (int(m.group(1)), i) for t, i in vocab.items() if (m := _FAST_PATTERN.fullmatch(t))
    )
    fast_start = fast[0][1] if fast else len(tokenizer)
    if any(k != j or i != fast_start + j for j, (k, i) in enumerate(fast)):
        raise ValueError("FAST tokens must be <|fast_0|>..<|fast_{N-1}|> with contiguous ids")
    ids = SpecialIds(
        pad=int(tokenizer.pad_token_id),
        eos=int(tokenizer.eos_token_id),
        im_start=id_of("<|im_start|>"),
        im_end=id_of("<|im_end|>"),
        vision_start=id_of("<|vision_start|>"),
        vision_end=id_of("<|vision_end|>"),
        image_pad=id_of("<|image_pad|>"),
        video_pad=id_of("<|video_pad|>"),
        propri=id_of("<|propri|>"),
        action=id_of("<|action|>"),
        fast_start=fast_start,
        num_fast=len(fast),
    )
    _CACHE[tokenizer] = ids
    return ids


def fast_token_range(tokenizer: PreTrainedTokenizerFast) -> range:
    """The contiguous id range of the FAST action tokens (FAST index ``k`` is ``start + k``)."""
    return special_ids(tokenizer).fast_range


def fast_token_id(tokenizer: PreTrainedTokenizerFast, k: int) -> int:
    """The id of FAST action token ``k``."""
    ids = special_ids(tokenizer)
    if not 0 <= k < ids.num_fast:
        raise IndexError(f"FAST token index {k} out of range [0, {ids.num_fast})")
    return ids.fast_start + k
