"""Tiny AnimateDiff components built from config with a fixed seed.

They follow the shapes diffusers uses in its own AnimateDiff tests and need no
download: the CLIP tokenizer is rebuilt from the BPE merges file that open_clip
ships, which is the same vocabulary as Stable Diffusion 1.5's tokenizer.
"""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Dict

from common.files import installed_file, write_atomic

CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77
# 49408 = 256 byte symbols + 256 with </w> + merges + 2 special tokens
_NUM_MERGES = CLIP_VOCAB_SIZE - 512 - 2
TINY_NORM_GROUPS = 32
# Raise when the tiny components change what they compute for the same seed: part of
# every tiny clip's fingerprint, so a store of older tiny clips is refused, not mixed.
# 2: 32 norm groups in the UNet and the motion modules (were 2)
TINY_ARCHITECTURE_VERSION = 2


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode table (a published fact of that BPE)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


def open_clip_bpe_file() -> Path:
    # open_clip ships the CLIP BPE file the offline tokenizer is built from
    return installed_file("open_clip", "bpe_simple_vocab_16e6.txt.gz", "run `make install` (pip install "
                          "open-clip-torch==3.3.0)")


def clip_tokenizer_files(cache_dir: str | os.PathLike) -> Path:
    """Write vocab.json and merges.txt for the CLIP tokenizer into cache_dir/clip_tokenizer."""
    bpe = open_clip_bpe_file()
    lines = gzip.open(bpe, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + _NUM_MERGES]]
    byte_symbols = list(_bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"rebuilt CLIP vocabulary has {len(vocab)} entries, expected {CLIP_VOCAB_SIZE}")
    out = Path(cache_dir) / "clip_tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    vocab_json = json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False)
    merges_txt = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    for name, text in (("vocab.json", vocab_json), ("merges.txt", merges_txt)):
        target = out / name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(text.encode()).hexdigest():
            continue
        write_atomic(target, text)
    return out


def clip_tokenizer(cache_dir: str | os.PathLike):
    # heavy: torch / diffusers / transformers: preflight and the prompt sets use the tokenizer files without them
    from transformers import CLIPTokenizer

    folder = clip_tokenizer_files(cache_dir)
    # from_pretrained on the folder works across transformers 4.x and 5.x constructors
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=CLIP_MAX_LENGTH)


def tiny_components(seed: int = 0, cache_dir: str | os.PathLike = ".") -> dict:
    """unet, motion_adapter, vae, text_encoder, tokenizer: each seeded separately so
    adding a component never changes the others."""
    # heavy: as above
    import torch
    # heavy: as above
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    # heavy: as above
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    # 32 norm groups as SD1.5 and the authors' UNet; channels (32, 64) divide by them
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, norm_num_groups=TINY_NORM_GROUPS)
    torch.manual_seed(seed + 1)
    # the authors' motion module hard-codes GroupNorm(32, C) (VanillaTemporalModule passes no
    # norm_num_groups): with 32 groups their code builds this same network (docs/parity.md)
    motion_adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2,
                                   motion_norm_num_groups=TINY_NORM_GROUPS, motion_num_attention_heads=4)
    torch.manual_seed(seed + 2)
    # four blocks: the same 8x spatial compression as SD's VAE, so 64x64 frames give
    # 8x8 latents and the tiny UNet stays cheap
    vae = AutoencoderKL(block_out_channels=(8, 16, 32, 32), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        latent_channels=4, norm_num_groups=2, layers_per_block=1)
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=49406, eos_token_id=49407, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_MAX_LENGTH))
    return dict(unet=unet, motion_adapter=motion_adapter, vae=vae, text_encoder=text_encoder,
                tokenizer=clip_tokenizer(cache_dir))


def tiny_personalized_unet(base_unet, seed: int, scale: float = 0.05):
    """A 'personalized' UNet for tiny runs: the base plus a seeded perturbation, so the
    residual tau_personalized = w_p - w_0 is non-zero and alpha-scaling is testable."""
    # heavy: as above
    import torch

    g = torch.Generator().manual_seed(seed)
    unet = copy.deepcopy(base_unet)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.detach().std() if p.numel() > 1 else 1.0))
    return unet


def tiny_lora_state_dict(unet, seed: int, rank: int = 4) -> dict:
    """A seeded LoRA on the UNet's attention projections and proj_in/proj_out, in the
    kohya key format of the AnimateLCM release (``lora_unet_<name>.lora_down.weight`` /
    ``lora_up.weight``, no alpha keys): tiny runs go through the same fusion code as the
    real spatial LoRA."""
    # heavy: as above
    import torch

    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in unet.named_modules():
        leaf = name.split(".")[-1]
        if "motion_modules" in name:
            continue
        stem = "lora_unet_" + name.replace(".", "_")
        if isinstance(module, torch.nn.Linear) and (leaf in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")):
            state[f"{stem}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=g) * 0.1
            state[f"{stem}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.1
        elif isinstance(module, torch.nn.Conv2d) and leaf in ("proj_in", "proj_out") and ".attentions." in name:
            # 1x1 convolutions, as SD1.5's transformer projections (4-D LoRA factors)
            state[f"{stem}.lora_down.weight"] = torch.randn(rank, module.in_channels, 1, 1, generator=g) * 0.1
            state[f"{stem}.lora_up.weight"] = torch.randn(module.out_channels, rank, 1, 1, generator=g) * 0.1
    return state
