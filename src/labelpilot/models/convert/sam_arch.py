"""The Segment Anything architecture (Kirillov et al., 2023) in PyTorch, written from the
paper's description, with parameter names that match the published checkpoints
(`image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`) so `labelpilot models convert`
can load them. Used only to export ONNX encoder/decoder pairs; inference runs on ONNX Runtime.
Needs the `[train]` extra (torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SamConfig:
    embed_dim: int = 768
    depth: int = 12
    heads: int = 12
    global_blocks: tuple[int, ...] = (2, 5, 8, 11)
    img_size: int = 1024
    patch: int = 16
    window: int = 14
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp: int = 2048
    decoder_heads: int = 8

    @property
    def grid(self) -> int:
        return self.img_size // self.patch


CONFIGS = {
    "sam_vit_b": SamConfig(),
    "sam_vit_l": SamConfig(embed_dim=1024, depth=24, heads=16, global_blocks=(5, 11, 17, 23)),
    "sam_vit_h": SamConfig(embed_dim=1280, depth=32, heads=16, global_blocks=(7, 15, 23, 31)),
    # a tiny encoder with the real prompt encoder and mask decoder: tests and latency checks
    "sam_tiny": SamConfig(embed_dim=64, depth=2, heads=2, global_blocks=(1,)),
}


class LayerNorm2d(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - mu) / torch.sqrt(var + self.eps) \
            + self.bias[:, None, None]


# ---- image encoder (ViT with windowed and global attention, decomposed rel-pos) -------
class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def _rel_pos(q: int, k: int, table: Tensor) -> Tensor:
    span = 2 * max(q, k) - 1
    if table.shape[0] != span:
        table = F.interpolate(table.t()[None], size=span, mode="linear")[0].t()
    qc = torch.arange(q)[:, None] * max(k / q, 1.0)
    kc = torch.arange(k)[None, :] * max(q / k, 1.0)
    return table[((qc - kc) + (k - 1) * max(q / k, 1.0)).long()]


class EncoderAttention(nn.Module):
    def __init__(self, dim: int, heads: int, size: int) -> None:
        super().__init__()
        self.heads = heads
        hd = dim // heads
        self.scale = hd ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * size - 1, hd))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * size - 1, hd))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rh = _rel_pos(h, h, self.rel_pos_h)
        rw = _rel_pos(w, w, self.rel_pos_w)
        rq = q.reshape(b * self.heads, h, w, -1)
        bias_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)
        bias_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)
        attn = (attn.view(-1, h, w, h, w) + bias_h[..., None] + bias_w[..., None, :]
                ).view(-1, h * w, h * w)
        out = (attn.softmax(-1) @ v).view(b, self.heads, h, w, -1)
        return self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(self.act(self.lin1(x)))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, grid: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EncoderAttention(dim, heads, window if window else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, dim * 4)
        self.window = window

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            b, h, w, c = x.shape
            s = self.window
            ph, pw = (s - h % s) % s, (s - w % s) % s
            x = F.pad(x, (0, 0, 0, pw, 0, ph))
            hp, wp = h + ph, w + pw
            x = x.view(b, hp // s, s, wp // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s, s, c)
            x = self.attn(x)
            x = x.view(b, hp // s, wp // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
            x = x[:, :h, :w].contiguous()
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ImageEncoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch, cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, cfg.embed_dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.embed_dim, cfg.heads, 0 if i in cfg.global_blocks else cfg.window, g)
            for i in range(cfg.depth))
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.embed_dim, cfg.prompt_dim, 1, bias=False), LayerNorm2d(cfg.prompt_dim),
            nn.Conv2d(cfg.prompt_dim, cfg.prompt_dim, 3, padding=1, bias=False),
            LayerNorm2d(cfg.prompt_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))


# ---- prompt encoder --------------------------------------------------------------------
class RandomFourierPE(nn.Module):
    def __init__(self, feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, feats))

    def encode(self, coords: Tensor) -> Tensor:  # coords in [0, 1]
        m: Tensor = self.positional_encoding_gaussian_matrix  # type: ignore[assignment]
        c = (2 * coords - 1) @ m * (2 * math.pi)
        return torch.cat([c.sin(), c.cos()], -1)

    def grid(self, h: int, w: int) -> Tensor:
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return self.encode(torch.stack([xx, yy], -1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        d = cfg.prompt_dim
        self.pe_layer = RandomFourierPE(d // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, d) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, d)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, 4, 2, 2), LayerNorm2d(4), nn.GELU(),
            nn.Conv2d(4, 16, 2, 2), LayerNorm2d(16), nn.GELU(), nn.Conv2d(16, d, 1))
        self.no_mask_embed = nn.Embedding(1, d)


# ---- mask decoder (two-way transformer) ----------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        out = attn.softmax(-1) @ v
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class TwoWayBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries: Tensor, keys: Tensor, qpe: Tensor, kpe: Tensor
                ) -> tuple[Tensor, Tensor]:
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + qpe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + qpe, keys + kpe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + kpe, queries + qpe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: Tensor, image_pe: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        keys = image.flatten(2).permute(0, 2, 1)
        kpe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, kpe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + kpe, keys)
        return self.norm_final_attn(queries), keys


class MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int) -> None:
        super().__init__()
        dims = [d_in] + [hidden] * (layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, [*dims[1:], d_out],
                                                                     strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        d = cfg.prompt_dim
        self.transformer = TwoWayTransformer(cfg.decoder_depth, d, cfg.decoder_heads, cfg.decoder_mlp)
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(4, d)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, 2, 2), LayerNorm2d(d // 4), nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, 2, 2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(d, d, d // 8, 3) for _ in range(4))
        self.iou_prediction_head = MLP(d, 256, 4, 3)

    def forward(self, image: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor
                ) -> tuple[Tensor, Tensor]:
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], 0)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], 1)
        src = image.expand(b, -1, -1, -1) + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, keys = self.transformer(src, pos, tokens)
        up = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in
                             enumerate(self.output_hypernetworks_mlps)], 1)
        bu, cu, hu, wu = up.shape
        masks = (hyper @ up.view(bu, cu, hu * wu)).view(bu, -1, hu, wu)
        return masks, self.iou_prediction_head(hs[:, 0])


class Sam(nn.Module):
    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoder(cfg)
        self.prompt_encoder = PromptEncoder(cfg)
        self.mask_decoder = MaskDecoder(cfg)


# ---- the exported graphs -------------------------------------------------------------
class EncoderGraph(nn.Module):
    """`image` [1,3,S,S] (normalised, resized longest side to S, zero-padded bottom-right)
    -> `image_embeddings` [1,256,S/16,S/16]."""

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.encoder = sam.image_encoder

    def forward(self, image: Tensor) -> Tensor:
        return self.encoder(image)


class DecoderGraph(nn.Module):
    """The decoder in the layout of the official SAM ONNX export: inputs image_embeddings,
    point_coords [1,N,2] (pixels of the S-sized input), point_labels [1,N] (1 positive,
    0 negative, 2/3 box corners, -1 padding), mask_input [1,1,4g,4g], has_mask_input [1];
    outputs masks [1,4,4g,4g] (low-resolution logits; the first is the single-mask output,
    1-3 the multi-mask ones) and iou_predictions [1,4]. Resizing to the image is done
    outside, in NumPy, so one graph serves every image size."""

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.pe = sam.prompt_encoder
        self.dec = sam.mask_decoder
        self.size = sam.cfg.img_size
        g = sam.cfg.grid
        self.register_buffer("dense_pe", self.pe.pe_layer.grid(g, g)[None])

    def forward(self, image_embeddings: Tensor, point_coords: Tensor, point_labels: Tensor,
                mask_input: Tensor, has_mask_input: Tensor) -> tuple[Tensor, Tensor]:
        coords = (point_coords + 0.5) / self.size
        emb = self.pe.pe_layer.encode(coords)
        labels = point_labels[..., None]
        emb = emb * (labels != -1) + self.pe.not_a_point_embed.weight * (labels == -1)
        for i, point_pe in enumerate(self.pe.point_embeddings):
            emb = emb + point_pe.weight * (labels == i)  # type: ignore[operator]
        dense = self.pe.mask_downscaling(mask_input) * has_mask_input \
            + (1 - has_mask_input) * self.pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense_pe: Tensor = self.dense_pe  # type: ignore[assignment]
        return self.dec(image_embeddings, dense_pe, emb, dense)


def build(arch: str, checkpoint: str | None = None) -> Sam:
    cfg = CONFIGS.get(arch)
    if cfg is None:
        from labelpilot.errors import LabelPilotError

        raise LabelPilotError(f"unknown SAM architecture {arch!r}",
                              hint=f"one of: {', '.join(CONFIGS)}")
    sam = Sam(cfg)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith(("pixel_mean", "pixel_std"))}
        missing, unexpected = sam.load_state_dict(state, strict=False)
        if missing or unexpected:
            from labelpilot.errors import LabelPilotError

            raise LabelPilotError(
                f"{checkpoint} is not a {arch} checkpoint: {len(missing)} missing and "
                f"{len(unexpected)} unexpected parameters (first: "
                f"{(missing or unexpected)[0]})", hint="pick the --arch the checkpoint was made for")
    return sam.eval()
