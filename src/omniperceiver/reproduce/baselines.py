"""The small models the seed's tables set beside the Perceiver, each read as the task's models are read
(forward(x, mask) -> logits (B, K), and ``num_classes`` = K) and trained by :func:`omniperceiver.train.fit` like
them: a CNN and a ViT on images (B, C, H, W); a 1-D CNN on series (B, T, C) (audio samples or frames); a
transformer over all points and a PointNet on point clouds (B, M, 3), each reading the points through the
Perceiver's own input adapter (the same features)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from omniperceiver.core.adapter import InputAdapterConfig


class SmallCNN(nn.Module):
    """Two blocks of two 3x3 convolutions (``width`` and 2·``width`` channels, BatchNorm, ReLU) each followed
    by 2x2 max-pooling, then a hidden layer of 128 units with dropout: images (B, C, H, W) -> logits (B, K).
    Weights and images are held channels last, the layout oneDNN's CPU convolutions and pooling run in (a
    training step at batch 32 of 28x28 images on one AMX core: 47-49 ms against 59-60 ms channels first)."""

    def __init__(self, channels: int, image_shape: tuple[int, int], classes: int, width: int = 32) -> None:
        super().__init__()
        self.num_classes = classes

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for c in (c_in, c_out):
                layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            return [*layers, nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(channels, width), *block(width, 2 * width), nn.Flatten())
        h, w = image_shape
        self.head = nn.Sequential(
            nn.Linear(2 * width * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, classes)
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.features(x.contiguous(memory_format=torch.channels_last)))


class SmallCNN1d(nn.Module):
    """Four blocks of a 3-wide convolution (``width``, 2·, 4·, 4·``width`` channels, BatchNorm, ReLU) and 2x
    max-pooling over time, the maximum over the real steps, a hidden layer of 128 units with dropout: series
    (B, T, C) (patches of audio samples, or spectrogram frames) and their mask (B, T) -> logits (B, K)."""

    def __init__(self, channels: int, classes: int, width: int = 32) -> None:
        super().__init__()
        self.num_classes = classes
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise((channels, width, 2 * width, 4 * width, 4 * width)):
            layers += [nn.Conv1d(c_in, c_out, 3, padding=1), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2)]
        self.steps = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(4 * width, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        features = self.steps(x.transpose(1, 2))  # (B, W, T / 16)
        if mask is not None:  # a pooled step is real when the first step it covers is
            real = mask[:, :: x.shape[1] // features.shape[-1]][:, : features.shape[-1]]
            features = features.masked_fill(~real[:, None], float("-inf"))
        return self.head(features.amax(-1))


class SmallViT(nn.Module):
    """Patches of ``patch``² pixels embedded in ``width`` channels with learned positions and a class token,
    ``depth`` pre-norm transformer layers (``heads`` heads, MLP 2x, dropout 0.1), the class token's logits:
    images (B, C, H, W) -> logits (B, K)."""

    def __init__(
        self,
        channels: int,
        image_shape: tuple[int, int],
        classes: int,
        patch: int,
        width: int = 64,
        depth: int = 4,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.num_classes = classes
        h, w = image_shape
        self.embed = nn.Conv2d(channels, width, patch, stride=patch)
        self.token = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 2 * width, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, classes))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, M, D)
        tokens = torch.cat([self.token.expand(len(x), -1, -1), tokens], dim=1) + self.positions
        return self.head(self.encoder(tokens)[:, 0])


class QuadraticAttentionLayer(nn.Module):
    """A pre-norm transformer layer whose attention weighs every pair of its M elements (M² scores per head,
    computed by PyTorch's fused kernel, which does not keep them all at once): the cost a Perceiver avoids.
    (B, M, D) -> (B, M, D)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        b, m, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, m, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # (B, H, M, D / H)
        x = x + self.out(attended.transpose(1, 2).reshape(b, m, d))
        return x + self.mlp(self.norm2(x))


class PointTransformer(nn.Module):
    """Points through the Perceiver's input ``adapter``, a Linear to ``width``, ``depth`` transformer layers
    over all M points (:class:`QuadraticAttentionLayer`), the mean over the points, logits (B, K)."""

    def __init__(self, adapter: InputAdapterConfig, classes: int, width: int = 64, depth: int = 3, heads: int = 4):
        super().__init__()
        self.num_classes = classes
        self.features = adapter.build()
        self.embed = nn.Linear(adapter.num_channels, width)
        self.layers = nn.Sequential(*(QuadraticAttentionLayer(width, heads) for _ in range(depth)))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, classes))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        features, _ = self.features(x, mask)
        return self.head(self.layers(self.embed(features)).mean(1))


class PointNet(nn.Module):
    """Points through the Perceiver's input ``adapter``, a shared MLP per point (64, 128, 256 channels;
    BatchNorm, ReLU), the maximum over the points, a hidden layer of 128 with dropout, logits (B, K)."""

    def __init__(self, adapter: InputAdapterConfig, classes: int) -> None:
        super().__init__()
        self.num_classes = classes
        self.features = adapter.build()
        layers: list[nn.Module] = []
        for c_in, c_out in zip((adapter.num_channels, 64, 128), (64, 128, 256), strict=True):
            layers += [nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out), nn.ReLU()]
        self.points = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        features, _ = self.features(x, mask)
        return self.head(self.points(features.transpose(1, 2)).amax(-1))
