"""GenEval's detector (OWLv2) and CLIP at toy size: random weights and a word-level tokenizer over the words
the caller gives (GenEval's vocabulary, see ``GenEvalScorer.tiny``). The real architectures, for tests and smoke
evaluations that must not download anything. Their verdicts mean nothing."""

from __future__ import annotations

from typing import Any

SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>"]
MAX_LEN = 16


def tiny_tokenizer(words: set[str]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = SPECIAL + sorted(words)
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                  eos_token="<eos>", model_max_length=MAX_LEN)
    assert len(tok) == len(vocab), "tiny tokenizer lost its vocabulary"
    return tok


def _text_cfg(n_vocab: int) -> dict[str, Any]:
    return dict(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=MAX_LEN, bos_token_id=2, eos_token_id=3, pad_token_id=0)


def tiny_owlv2(words: set[str], seed: int = 0) -> tuple[Any, Any]:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    tok = tiny_tokenizer(words)
    cfg = Owlv2Config(text_config=_text_cfg(len(tok)), projection_dim=32,
                      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=64, patch_size=16))
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(cfg).eval()
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}), tokenizer=tok)
    return model, proc


def tiny_clip(words: set[str], seed: int = 0) -> tuple[Any, Any]:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = tiny_tokenizer(words)
    cfg = CLIPConfig(text_config=_text_cfg(len(tok)), projection_dim=32,
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=8))
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, CLIPProcessor(image_processor=ip, tokenizer=tok)
