"""The V-JEPA network JEDi reads features from: the ViT-H/16 video encoder (16 frames,
tubelet 2, 224 px, 3-D sin-cos positions with "uniform power") and the attentive pooler of
its Something-Something-v2 probe (one learned query, one cross-attention block). JEDi's
feature of a clip is the pooler's output, 1280-d.

This is the project's own implementation of the architecture as the ``videojedi`` package
(1.1.0) builds it from the ``vjepa`` package (0.1.2) with its config
``vith16_ssv2_16x2x3.yaml``; parameter names follow the published checkpoints
(``vith16.pth.tar``: ``target_encoder``; ``ssv2-probe.pth.tar``: ``classifier``) so they
load strictly. ``videojedi`` is not a dependency: it pins torch 2.4, torchvision 0.19 and
pandas 2.2.2, and building its model downloads its config from GitHub and starts a
torch.distributed process group. ``tests/test_jedi.py`` checks this code against the
packages' modules on the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import InputError
from metrics.feature_distance import load_state


@dataclass(frozen=True)
class VJEPAConfig:
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    image_size: int = 224
    num_frames: int = 16
    uniform_power: bool = True
    encoder_ln_eps: float = 1e-6      # the encoder's LayerNorms
    pooler_ln_eps: float = 1e-5       # the probe's (torch's default)


VIT_HUGE_16 = VJEPAConfig()


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[sin(p w_k), cos(p w_k)] with w_k = 10000^(-k / (dim/2)), k < dim/2: [M, dim]."""
    if dim % 2:
        raise InputError(f"a sin-cos embedding needs an even width, got {dim}.")
    freq = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = positions.reshape(-1, 1).astype(np.float64) * freq[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_3d(dim: int, grid: int, depth: int, uniform_power: bool) -> np.ndarray:
    """Positions of a depth x grid x grid token volume (time slowest): time, row and column
    embeddings side by side, cut to ``dim``. "Uniform power" gives each axis the same width
    (2 * ceil(dim / 6)); otherwise time takes half and the two spatial axes a quarter each."""
    t, h, w = np.meshgrid(np.arange(depth), np.arange(grid), np.arange(grid), indexing="ij")
    if uniform_power:
        dt = dh = dw = 2 * int(np.ceil(dim / 6))
    else:
        dt, dh, dw = dim // 2, dim // 4, dim // 4
    emb = np.concatenate([sincos_1d(dt, t), sincos_1d(dh, h), sincos_1d(dw, w)], axis=1)
    return emb[:, :dim]


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(_heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads))
        return self.proj(_merge(y))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TubeletEmbed(nn.Module):
    """Non-overlapping tubelet x patch x patch cubes -> tokens (time, row, column order)."""

    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        size = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=size, stride=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    """The V-JEPA video ViT: [B, 3, T, H, W] (ImageNet-normalised) -> tokens [B, N, D]."""

    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.image_size // cfg.patch_size
        self.grid_depth = cfg.num_frames // cfg.tubelet_size
        self.patch_embed = TubeletEmbed(cfg)
        pos = sincos_3d(cfg.embed_dim, self.grid, self.grid_depth, cfg.uniform_power)
        self.pos_embed = nn.Parameter(torch.from_numpy(pos).float()[None], requires_grad=False)
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, hidden, cfg.encoder_ln_eps)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.encoder_ln_eps)

    def positions(self, t: int, h: int, w: int) -> torch.Tensor:
        """The position table for an input of t frames of h x w: the trained one, or for
        another size its trilinear resampling by the size ratio (as the authors' code)."""
        cfg = self.cfg
        if (t, h, w) == (cfg.num_frames, cfg.image_size, cfg.image_size):
            return self.pos_embed
        scale = (t // cfg.tubelet_size / self.grid_depth, h // cfg.patch_size / self.grid,
                 w // cfg.patch_size / self.grid)
        table = self.pos_embed.reshape(1, self.grid_depth, self.grid, self.grid, -1).permute(0, 4, 1, 2, 3)
        table = F.interpolate(table, scale_factor=scale, mode="trilinear")
        return table.permute(0, 2, 3, 4, 1).reshape(1, -1, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, t, h, w = x.shape
        x = self.patch_embed(x) + self.positions(t, h, w)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(x).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(_heads(self.q(queries), self.heads), _heads(k, self.heads),
                                           _heads(v, self.heads))
        return self.proj(_merge(y))


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.xattn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, hidden)

    def forward(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        queries = queries + self.xattn(queries, self.norm1(x))
        return queries + self.mlp(self.norm2(queries))


class AttentivePooler(nn.Module):
    """One learned query attends over all tokens: [B, N, D] -> [B, D]."""

    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.cross_attention_block = CrossAttentionBlock(cfg.embed_dim, cfg.num_heads,
                                                         int(cfg.embed_dim * cfg.mlp_ratio), cfg.pooler_ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cross_attention_block(self.query_tokens.expand(x.shape[0], -1, -1), x).squeeze(1)


class VJEPAFeatures(nn.Module):
    """Encoder then the probe's pooler: JEDi's per-clip feature."""

    def __init__(self, cfg: VJEPAConfig = VIT_HUGE_16):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.pooler = AttentivePooler(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooler(self.encoder(x))


def init_random(model: VJEPAFeatures, seed: int) -> VJEPAFeatures:
    """A seeded initialisation in the authors' manner (truncated normal 0.02 for linear and
    convolution weights, zero biases, unit LayerNorms, residual projections scaled by
    1/sqrt(2 * layer)), without moving the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(model.pooler.query_tokens, std=0.02, a=-2.0, b=2.0)
        with torch.no_grad():
            for layer, block in enumerate(model.encoder.blocks, 1):
                block.attn.proj.weight.div_(np.sqrt(2.0 * layer))
                block.mlp.fc2.weight.div_(np.sqrt(2.0 * layer))
            xblock = model.pooler.cross_attention_block
            xblock.xattn.proj.weight.div_(np.sqrt(2.0))
            xblock.mlp.fc2.weight.div_(np.sqrt(2.0))
    return model.eval()


def _strip(state: Dict[str, torch.Tensor], prefixes: Tuple[str, ...]) -> Dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            key = key.replace(prefix, "")
        out[key] = value
    return out


def encoder_state(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The encoder's weights from ``vith16.pth.tar`` (``target_encoder``, else ``encoder``),
    without the DistributedDataParallel and backbone prefixes."""
    state = checkpoint.get("target_encoder", checkpoint.get("encoder")) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError("the encoder checkpoint has no 'target_encoder' or 'encoder' entry.")
    return _strip(state, ("module.", "backbone."))


def pooler_state(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The pooler's weights from ``ssv2-probe.pth.tar`` (``classifier``; its linear head is
    not used by JEDi)."""
    state = checkpoint.get("classifier") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError("the probe checkpoint has no 'classifier' entry.")
    state = _strip(state, ("module.",))
    return {k[len("pooler."):]: v for k, v in state.items() if k.startswith("pooler.")}


def load_pretrained(model: VJEPAFeatures, encoder_checkpoint: Dict, probe_checkpoint: Dict,
                    encoder_source: str = "encoder checkpoint",
                    probe_source: str = "probe checkpoint") -> VJEPAFeatures:
    load_state(model.encoder, encoder_state(encoder_checkpoint), encoder_source, "V-JEPA encoder",
               optional=("pos_embed",))
    load_state(model.pooler, pooler_state(probe_checkpoint), probe_source, "V-JEPA probe pooler")
    return model.eval()
