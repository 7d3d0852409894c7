"""Prompt cleaning before CLIP's BPE, as open_clip, hpsv2 and OpenAI's ``clip`` do it.

Their tokenizers run ``ftfy.fix_text`` (mojibake, curly quotes, latin ligatures, full-width letters...), then
``html.unescape`` twice (``&amp;`` -> ``&``), strip, and collapse whitespace, before lower-casing and BPE.
transformers' CLIP tokenizer does none of the first three, so the same prompt gets different token ids (and
scores) unless it is cleaned first. :func:`clean_clip_text` is that cleaning, verbatim; the transformers
tokenizer's own NFC + whitespace + lower-case normalisation is idempotent on its output.

PickScore is the exception: its original is transformers' processor, which does not clean, so its scorer
leaves prompts as they are.
"""

from __future__ import annotations

import html
import re

import ftfy

_WS = re.compile(r"\s+")


def clean_clip_text(text: str) -> str:
    """``whitespace_clean(basic_clean(text))`` of open_clip / hpsv2 / OpenAI clip's ``simple_tokenizer``."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WS.sub(" ", text).strip()
