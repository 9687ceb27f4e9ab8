"""The presets' tokenizer: offline, Qwen-compatible special tokens, exact round trips, up to date."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from embodia.data.engine.tasks import TASKS
from embodia.models.text_tokenizer import (
    EMBODIA_SPECIAL_TOKENS,
    QWEN_SPECIAL_TOKENS,
    base_tokenizer_path,
    fast_token,
    fast_token_id,
    fast_token_range,
    load_base_tokenizer,
    load_preset_tokenizer,
    serialize_base_tokenizer,
    special_ids,
    train_base_tokenizer,
)
from embodia.models.tokenizer_corpus import corpus

TEXTS = [
    "Pick up the puck and place it at the goal.",
    "About 0.37 m.",
    "x=-12.5, y=1000, t=0.001; 3141592653",
    '[{"bbox_2d": [429, 325, 687, 477], "label": "coffee machine"}]',
    "Reasoning: the mug is left of the plate.\nSubtask: Grasp the mug.\nAction: ",
    "Ünïcödé: 日本語のテキスト, emoji 🤖🦾, Ελληνικά, العربية, tabs\tand  double  spaces",
    "  leading and trailing whitespace \n\n",
]


@pytest.fixture(scope="module")
def tok():
    return load_preset_tokenizer()


def test_loads_offline_from_the_package(tok, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert base_tokenizer_path().is_file()
    assert (
        len(load_preset_tokenizer(num_fast_tokens=4)) == load_base_tokenizer().get_vocab_size() + 13
    )


def test_special_tokens_follow_the_base_vocab_in_order(tok):
    base = load_base_tokenizer().get_vocab_size()
    order = [*QWEN_SPECIAL_TOKENS, *EMBODIA_SPECIAL_TOKENS, fast_token(0), fast_token(1023)]
    expected = [*range(base, base + 10), base + 9 + 1023]
    assert tok.convert_tokens_to_ids(order) == expected
    for token in order:  # a single token, also inside running text
        token_id = tok.convert_tokens_to_ids(token)
        assert tok.encode(token, add_special_tokens=False) == [token_id]
        ids = tok.encode(f"go{token}now", add_special_tokens=False)
        assert token_id in ids and tok.decode(ids) == f"go{token}now"
    ids = special_ids(tok)
    assert (ids.pad, ids.eos, ids.im_start, ids.im_end) == (base, base + 2, base + 1, base + 2)
    assert (ids.vision_start, ids.vision_end, ids.image_pad, ids.video_pad) == tuple(
        range(base + 3, base + 7)
    )
    assert (ids.propri, ids.action) == (base + 7, base + 8)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_qwen_processor_attributes(tok):
    # what Qwen2.5-VL / Qwen3-VL processors read off the tokenizer
    assert tok.image_token == "<|image_pad|>" and tok.video_token == "<|video_pad|>"
    assert tok.vision_start_token == "<|vision_start|>" and tok.vision_end_token == "<|vision_end|>"
    ids = special_ids(tok)
    assert (tok.image_token_id, tok.video_token_id) == (ids.image_pad, ids.video_pad)
    assert (tok.vision_start_token_id, tok.vision_end_token_id) == (
        ids.vision_start,
        ids.vision_end,
    )
    assert (tok.propri_token_id, tok.action_token_id) == (ids.propri, ids.action)


@pytest.mark.parametrize("n", [0, 7, 1024])
def test_fast_tokens_are_contiguous_and_configurable(n):
    tok = load_preset_tokenizer(num_fast_tokens=n)
    ids = special_ids(tok)
    assert ids.num_fast == n and len(tok) == ids.fast_start + n
    assert fast_token_range(tok) == range(ids.fast_start, ids.fast_start + n)
    assert [fast_token_id(tok, k) for k in range(n)] == tok.convert_tokens_to_ids(
        [fast_token(k) for k in range(n)]
    )
    assert ids.fast_start == ids.action + 1
    with pytest.raises(IndexError):
        fast_token_id(tok, n)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.unk_token_id is None or tok.unk_token_id not in ids


def test_digits_are_single_tokens(tok):
    pieces = tok.tokenize("1234 [500, 73]")
    assert all(len(p) == 1 for p in pieces if any(c.isdigit() for c in p))


def test_chat_template_renders_qwen_format(tok):
    messages = [
        {"role": "system", "content": "You are a helpful robot assistant."},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "propri"},
                {"type": "text", "text": "Point to the puck."},
            ],
        },
        {"role": "assistant", "content": '[{"point_2d": [500, 500], "label": "puck"}]'},
        {"role": "user", "content": "And now?"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful robot assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|propri|>"
        "Point to the puck.<|im_end|>\n"
        '<|im_start|>assistant\n[{"point_2d": [500, 500], "label": "puck"}]<|im_end|>\n'
        "<|im_start|>user\nAnd now?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tok.apply_chat_template(messages[:2], tokenize=True, return_dict=True)["input_ids"]
    assert ids.count(special_ids(tok).image_pad) == 1


def test_save_and_reload_offline(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    for text in [*TEXTS, "<|im_start|>user\n<|image_pad|><|action|><|fast_5|><|im_end|>"]:
        assert again.encode(text) == tok.encode(text)
    assert special_ids(again) == special_ids(tok)
    assert again.chat_template == tok.chat_template
    assert again.image_token_id == tok.image_token_id


def test_instructions_take_few_tokens_per_word(tok):
    sentences = [s for spec in TASKS.values() for s in (spec.instruction, *spec.paraphrases)]
    words = sum(len(s.split()) for s in sentences)
    tokens = sum(len(tok.encode(s, add_special_tokens=False)) for s in sentences)
    assert tokens / words < 1.6


def test_shipped_tokenizer_matches_the_corpus():
    shipped = base_tokenizer_path().read_text(encoding="utf-8")
    # The cap the file was trained with reproduces it exactly if the corpus did not change.
    vocab_size = json.loads(shipped)["model"]["vocab"].__len__()
    fresh = serialize_base_tokenizer(train_base_tokenizer(corpus(), vocab_size))
    assert fresh == shipped, "the corpus changed: run scripts/train_text_tokenizer.py"


def test_training_is_deterministic():
    texts = ["Pick up the red cup.", "Place it at the goal, 12 cm left.", "The cup is closer."] * 3
    first = serialize_base_tokenizer(train_base_tokenizer(texts, 300))
    assert serialize_base_tokenizer(train_base_tokenizer(texts, 300)) == first
