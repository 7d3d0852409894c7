"""Golden scores from the ORIGINAL scorer libraries, for comfygen's parity tests (tests/scoring/test_golden.py).

Builds tiny random-weight models in the originals' own classes (originals.py), saves them in the originals'
file formats, scores fixed images and prompts (inputs.py) with the originals' own code, and writes

  <out>/expected.json        scores, token ids, versions, the rule applied where an original has none
  <out>/images/*             the inputs
  <out>/clip_tokenizer/      OpenAI's CLIP BPE vocabulary as vocab.json.gz + merges.txt.gz
  <out>/imagereward/ImageReward.pt, med_config.json          (state dict, ImageReward.pt layout, fp16)
  <out>/hps/HPS_v2.1_tiny.pt, HPS_v2_tiny.pt                 ({'state_dict': fp16}, HPS_v2*_compressed.pt layout)
  <out>/openai_clip/ViT-tiny.pt                              (TorchScript, the layout of OpenAI's ViT-*.pt)
  <out>/aesthetic/head.pth                                   (layers.{0,2,4,6,7}, the .pth layout)
  <out>/pickscore/model/ (save_pretrained), processor/*.json (PickScore_v1 / laion processor layout)

Run it in the originals' environment (see README.md in this folder):
    .venv-scorer-golden/bin/python scripts/scorer_golden/build.py --out tests/data/scorer_golden
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

import originals as O  # noqa: E402
import torch  # noqa: E402
from inputs import PROMPTS, write_images  # noqa: E402
from PIL import Image  # noqa: E402

SEEDS = {"hpsv21": 7, "hpsv20": 8, "imagereward": 5, "pickscore": 9, "openai_clip": 3, "aesthetic_head": 4}
RGBA_RULE = "convert('RGB') (alpha dropped) before the original transform: the original fails on 4 channels"


def content(ids: list[int], eot: int) -> list[int]:
    return ids[:ids.index(eot) + 1]


def write_clip_tokenizer(out: Path, work: Path) -> Path:
    """vocab.json/merges.txt for transformers' CLIPTokenizer from OpenAI clip's own BPE file (49408 ids)."""
    from clip.simple_tokenizer import SimpleTokenizer

    st = SimpleTokenizer()
    merges = [f"{a} {b}" for (a, b), _ in sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])]
    vocab = dict(st.encoder)
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    plain = work / "clip_tokenizer"
    plain.mkdir(parents=True, exist_ok=True)
    (plain / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (plain / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (out / "clip_tokenizer").mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        gz = out / "clip_tokenizer" / f"{name}.gz"
        with open(plain / name, "rb") as src, gzip.GzipFile(gz, "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    return plain


def tokens(work_tok: Path) -> dict:
    import clip
    import open_clip
    from hpsv2.src.open_clip import get_tokenizer
    from ImageReward.models.BLIP.blip import init_tokenizer

    hps_tok, bert = get_tokenizer("ViT-H-14"), init_tokenizer()
    out = {"openai_clip": [content(clip.tokenize([p], truncate=True)[0].tolist(), 49407) for p in PROMPTS],
           "hpsv2": [content(hps_tok([p])[0].tolist(), 49407) for p in PROMPTS],
           "open_clip": [content(open_clip.get_tokenizer("ViT-H-14")([p])[0].tolist(), 49407) for p in PROMPTS],
           "imagereward_bert": [bert(p, padding="max_length", truncation=True, max_length=35).input_ids
                                for p in PROMPTS]}
    return out


def hps(out: Path, files: list[str], images_dir: Path) -> dict:
    import hpsv2.img_score as hs

    res = {}
    for name, version, fname in (("hpsv21", "v2.1", "HPS_v2.1_tiny.pt"), ("hpsv20", "v2.0", "HPS_v2_tiny.pt")):
        model, preprocess_val = O.hps_model(SEEDS[name])
        ckpt = out / "hps" / fname
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": O.half_state_dict(model)}, ckpt)
        hs.model_dict.clear()
        hs.model_dict.update(model=model, preprocess_val=preprocess_val)
        inputs, rules = [], {}
        for f in files:
            im = Image.open(images_dir / f)
            if im.mode == "RGBA":
                try:
                    hs.score([str(images_dir / f)], PROMPTS[0], cp=str(ckpt), hps_version=version)
                    raise AssertionError("hpsv2 scored an RGBA image: re-check the RGBA rule")
                except RuntimeError as e:
                    rules[f] = f"{RGBA_RULE} ({type(e).__name__}: {str(e)[:90]})"
                inputs.append(im.convert("RGB"))
            else:
                inputs.append(str(images_dir / f))
        scores = [[float(s) for s in hs.score(inputs, p, cp=str(ckpt), hps_version=version)] for p in PROMPTS]
        res[name] = {"checkpoint": f"hps/{fname}", "reference": f"hpsv2.img_score.score(images, prompt, cp, "
                     f"hps_version={version!r})", "input_rules": rules, "scores": scores}
    return res


def imagereward(out: Path, work: Path, files: list[str], images_dir: Path) -> dict:
    med = work / "med_config.json"
    med.write_text(json.dumps(O.IR_MED_CONFIG, indent=1))
    model = O.imagereward_model(str(med), SEEDS["imagereward"])
    ckpt = out / "imagereward" / "ImageReward.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(O.half_state_dict(model), ckpt)
    shutil.copy(med, ckpt.parent / "med_config.json")
    # ImageReward.load's own step (strict=False): report anything it would have skipped
    r = model.load_state_dict(torch.load(ckpt, map_location="cpu"), strict=False)
    assert not r.missing_keys and not r.unexpected_keys, r
    with torch.no_grad():
        scores = [[float(model.score(p, str(images_dir / f))) for f in files] for p in PROMPTS]
        rank = [model.inference_rank(p, [str(images_dir / f) for f in files])[1] for p in PROMPTS]
    return {"checkpoint": "imagereward/ImageReward.pt", "med_config": "imagereward/med_config.json",
            "vision": O.IR_VISION, "reference": "ImageReward.score(prompt, image_path)",
            "inference_rank_max_abs_diff": max(abs(a - b) for x, y in zip(scores, rank, strict=True)
                                               for a, b in zip(x, y, strict=True)),
            "scores": scores}


def openai_clip_and_aesthetic(out: Path, files: list[str], images_dir: Path) -> dict:
    import clip
    from clip.clip import _transform
    from ImageReward.models.AestheticScore import MLP, AestheticScore
    from ImageReward.models.CLIPScore import CLIPScore

    m = O.openai_clip(SEEDS["openai_clip"])
    path = out / "openai_clip" / "ViT-tiny.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    O.save_openai_torchscript(m, str(path))
    preprocess = _transform(m.visual.input_resolution)
    cs = O.bare(CLIPScore, device="cpu", clip_model=m, preprocess=preprocess)
    head = O.round_to_half_(O.reinit_(MLP(O.CLIP_TINY["embed_dim"]), SEEDS["aesthetic_head"])).eval()
    (out / "aesthetic").mkdir(parents=True, exist_ok=True)
    torch.save(O.half_state_dict(head), out / "aesthetic" / "head.pth")
    aes = O.bare(AestheticScore, device="cpu", clip_model=m, preprocess=preprocess, mlp=head)
    with torch.no_grad():
        clip_scores = [[float(cs.score(p, str(images_dir / f))) for f in files] for p in PROMPTS]
        aes_scores = [float(aes.score("", str(images_dir / f))) for f in files]
        # the archive itself runs (clip.load(jit=True) cannot patch graphs on torch 2.14: node["value"] is gone)
        jit_model = torch.jit.load(str(path), map_location="cpu").float().eval()
        img = torch.stack([preprocess(Image.open(images_dir / f)) for f in files])
        txt = clip.tokenize(PROMPTS, truncate=True)
        fi = torch.nn.functional.normalize(jit_model.encode_image(img).float())
        ft = torch.nn.functional.normalize(jit_model.encode_text(txt).float())
        jit_diff = float((ft @ fi.T - torch.tensor(clip_scores)).abs().max())
    return {
        "clipscore": {"checkpoint": "openai_clip/ViT-tiny.pt", "activation": "quick_gelu",
                      "reference": "ImageReward 1.5 CLIPScore.score(prompt, image_path): OpenAI clip encode_image/"
                                   "encode_text(clip.tokenize(prompt, truncate=True)), cosine",
                      "jit_archive_max_abs_diff": jit_diff, "scores": clip_scores},
        "aesthetic": {"checkpoint": "aesthetic/head.pth", "clip": "openai_clip/ViT-tiny.pt",
                      "reference": "ImageReward 1.5 AestheticScore.score (improved-aesthetic-predictor's MLP over the "
                                   "L2-normalised OpenAI CLIP image embedding)", "scores": aes_scores}}


PICK_TOKENIZER_CONFIG = {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True,
                         "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                         "pad_token": "<|endoftext|>"}
PICK_PREPROCESSOR = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                     "feature_extractor_type": "CLIPFeatureExtractor",
                     "image_mean": [0.48145466, 0.4578275, 0.40821073],
                     "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}


def pickscore(out: Path, work: Path, work_tok: Path, files: list[str], images_dir: Path) -> dict:
    from transformers import (
        AutoModel,
        AutoTokenizer,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
    )

    c = O.CLIP_TINY
    cfg = CLIPConfig(
        text_config=dict(vocab_size=c["vocab_size"], hidden_size=c["text_width"], intermediate_size=16,
                         num_hidden_layers=2, num_attention_heads=1, max_position_embeddings=77, hidden_act="gelu",
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=16, hidden_act="gelu"),
        projection_dim=16)
    model = O.round_to_half_(O.reinit_(CLIPModel(cfg), SEEDS["pickscore"]))
    mdir, pdir = out / "pickscore" / "model", out / "pickscore" / "processor"
    model.half().save_pretrained(mdir)
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "tokenizer_config.json").write_text(json.dumps(PICK_TOKENIZER_CONFIG, indent=1))
    (pdir / "preprocessor_config.json").write_text(json.dumps(PICK_PREPROCESSOR, indent=1))
    full = work / "pick_processor"
    shutil.copytree(pdir, full, dirs_exist_ok=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(work_tok / f, full / f)
    # PickScore's README recipe; the PIL image processor is the one transformers 4 used when it was published
    model = AutoModel.from_pretrained(mdir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(full)
    pil = CLIPProcessor(image_processor=CLIPImageProcessorPil.from_pretrained(full), tokenizer=tok)
    # transformers 5's default CLIPImageProcessor (torchvision backend when torchvision is installed): for information
    auto = CLIPProcessor(image_processor=CLIPImageProcessor.from_pretrained(full), tokenizer=tok)
    res = {}
    with torch.no_grad():
        for key, proc in (("scores", pil), ("scores_default_processor", auto)):
            ims = [Image.open(images_dir / f) for f in files]
            ii = proc(images=ims, return_tensors="pt")  # the README also passes padding/truncation: text-only
            img = model.get_image_features(**ii).pooler_output
            img = img / torch.norm(img, dim=-1, keepdim=True)
            rows = []
            for p in PROMPTS:
                ti = proc(text=p, padding=True, truncation=True, max_length=77, return_tensors="pt")
                txt = model.get_text_features(**ti).pooler_output
                txt = txt / torch.norm(txt, dim=-1, keepdim=True)
                rows.append((model.logit_scale.exp() * (txt @ img.T))[0].tolist())
            res[key] = rows
        res["tokens"] = [tok(p, truncation=True, max_length=77).input_ids for p in PROMPTS]
    res["default_processor"] = type(auto.image_processor).__name__
    return {"model": "pickscore/model", "processor": "pickscore/processor",
            "reference": "PickScore README recipe (CLIPProcessor with CLIPImageProcessorPil, AutoModel fp32)", **res}


def dumps(obj, indent: int = 0) -> str:
    """JSON with one line per list of numbers (score rows, token ids): readable diffs when fixtures change."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) for x in obj):
        return "[\n" + ",\n".join(pad + dumps(x, indent + 1) for x in obj) + "\n" + " " * indent + "]"
    return json.dumps(obj, ensure_ascii=False)


def versions() -> dict:
    names = ["torch", "torchvision", "open_clip_torch", "hpsv2", "image-reward", "openai-clip", "transformers",
             "tokenizers", "ftfy", "pillow", "timm", "fairscale"]
    return {n: metadata.version(n) for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent.parent / "tests" / "data" / "scorer_golden")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.update(HF_HOME=str(work / "hf_home"), HF_HUB_OFFLINE="1")
        O.bert_cache(str(work / "hf_home"))
        O.patch_imagereward_for_transformers5()
        files = write_images(out / "images")
        work_tok = write_clip_tokenizer(out, work)
        expected = {"generated_by": "scripts/scorer_golden/build.py", "versions": versions(), "images": files,
                    "image_modes": {f: Image.open(out / "images" / f).mode for f in files}, "prompts": PROMPTS,
                    "clip_tiny": O.CLIP_TINY, "tokens": tokens(work_tok), "scorers": {}}
        s = expected["scorers"]
        s.update(hps(out, files, out / "images"))
        s["imagereward"] = imagereward(out, work, files, out / "images")
        s.update(openai_clip_and_aesthetic(out, files, out / "images"))
        s["pickscore"] = pickscore(out, work, work_tok, files, out / "images")
    (out / "expected.json").write_text(dumps(expected) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    for name, v in s.items():
        flat = [x for row in v["scores"] for x in (row if isinstance(row, list) else [row])]
        print(f"  {name:12s} {len(flat):3d} scores, range {min(flat):.4f} .. {max(flat):.4f}")


if __name__ == "__main__":
    main()
