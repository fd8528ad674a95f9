"""Point clouds: every point is one element, described by its coordinates and their Fourier features."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig
from omniperceiver.core.attention import check_mask
from omniperceiver.core.config import require, require_optional_positive, require_positive
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import fourier_features

JACOBI_SWEEPS = 8  # sweeps of rotations: a 3 x 3 float32 matrix converges in 4-5


def eigenvectors(matrices: Tensor) -> Tensor:
    """The eigenvectors (B, d, d), as columns in ascending order of eigenvalue, of symmetric (B, d, d):
    ``torch.linalg.eigh``; under export (ONNX has no eigen-decomposition) cyclic Jacobi rotations of plain ops,
    equal to it to float rounding (up to each vector's sign, and where eigenvalues tie)."""
    if not torch.compiler.is_exporting():
        return torch.linalg.eigh(matrices)[1]
    d = matrices.shape[-1]
    eye = torch.eye(d, dtype=matrices.dtype, device=matrices.device)
    a, vectors = matrices, eye.expand_as(matrices)
    for _ in range(JACOBI_SWEEPS):
        for p in range(d - 1):
            for q in range(p + 1, d):  # the rotation in the (p, q) plane that zeroes a[p, q]
                theta = 0.5 * torch.atan2(2 * a[:, p, q], a[:, q, q] - a[:, p, p])[:, None, None]
                diagonal = eye[:, [p]] @ eye[[p]] + eye[:, [q]] @ eye[[q]]
                turn = eye[:, [p]] @ eye[[q]] - eye[:, [q]] @ eye[[p]]
                rotation = eye + (torch.cos(theta) - 1) * diagonal + torch.sin(theta) * turn
                a = rotation.transpose(1, 2) @ a @ rotation
                vectors = vectors @ rotation
    order = a.diagonal(dim1=1, dim2=2).argsort(dim=1)
    return vectors.gather(2, order[:, None, :].expand(-1, d, -1))


def principal_axes(x: Tensor, weights: Tensor) -> Tensor:
    """Centred points (B, M, d) and their weights (B, M, 1) -> the same points in each cloud's principal axes
    (the eigenvectors of its covariance, largest variance first), each axis pointing where the cloud's third
    moment along it is positive: the same coordinates however the cloud was rotated or reflected (where
    variances or third moments tie, the axes are arbitrary)."""
    count = weights.sum(1, keepdim=True).clamp(min=1)
    covariance = (x * weights).transpose(1, 2) @ x / count  # (B, d, d)
    axes = eigenvectors(covariance.float())  # ascending
    aligned = x @ axes.flip(-1).to(x.dtype)
    skew = ((aligned**3) * weights).sum(1, keepdim=True)
    return aligned * torch.where(skew < 0, -1.0, 1.0).to(x.dtype)


class PointCloudInputAdapter(InputAdapter):
    """Points (B, M, d + F) -> (B, M, C): each point's d coordinates with sin and cos of pi·f·x at K
    frequencies f from 1 to ``max_frequency`` per coordinate, C = d·(2K + 1), then its F ``feature_channels``
    as they are (a colour, an intensity, a pixel's value); with ``radial_features``, also the same features of
    the point's distance from the cloud's centre (C += 2K + 1). With ``align_axes`` the coordinates are taken
    in the cloud's own frame (centred, in its principal axes: ``principal_axes``), so that a rotated or moved
    cloud gives the same features. The features go through a learned Linear(F -> P) first with
    ``project_features`` = P (which keeps a few feature channels from being drowned by many coordinate
    features). Point order does not matter (no index positions); a mask (B, M) marks real points."""

    def __init__(self, config: PointCloudInputConfig) -> None:
        super().__init__()
        self.config = config
        self.projection = (
            Linear(config.feature_channels, config.project_features) if config.project_features is not None else None
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.dimensions + c.feature_channels:
            expected = f"d={c.dimensions}" + (f" + F={c.feature_channels}" if c.feature_channels else "")
            raise ValueError(f"expected points (B, M, {expected}), got {tuple(x.shape)}")
        if mask is not None:
            check_mask(mask, "(B, M)", tuple(x.shape[:2]))
        x, values = x[..., : c.dimensions], x[..., c.dimensions :]
        coordinates = x
        if c.align_axes or c.radial_features:
            weights = mask.unsqueeze(-1).to(x.dtype) if mask is not None else torch.ones_like(x[..., :1])
            centred = x - (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
            if c.align_axes:
                coordinates = principal_axes(centred, weights)
            if c.radial_features:
                coordinates = torch.cat([coordinates, centred.norm(dim=-1, keepdim=True)], dim=-1)
        resolution = (2 * c.max_frequency,) * coordinates.shape[-1]
        features = fourier_features(
            coordinates.flatten(0, 1), c.num_bands, resolution, concat_pos=True, sine_only=False
        )
        if self.projection is not None:
            values = self.projection(values)
        return torch.cat([features.view(*x.shape[:2], -1), values], dim=-1), mask


@dataclasses.dataclass(frozen=True)
class PointCloudInputConfig(InputAdapterConfig):
    """Clouds of points with ``dimensions`` coordinates (about [-1, 1]); ``num_bands`` frequencies up to
    ``max_frequency``; ``radial_features`` adds each point's distance from the centre; ``align_axes`` takes
    the coordinates in each cloud's principal axes (input independent of the pose: the demo's shapes reach
    0.971 ± 0.003 accuracy over seeds with it, 0.914 ± 0.010 without); ``feature_channels`` per point follow
    its coordinates (through a Linear to ``project_features`` channels, where given)."""

    variable_length = True

    dimensions: int = 3
    num_bands: int = 16
    max_frequency: float = 16.0
    radial_features: bool = False
    align_axes: bool = False
    feature_channels: int = 0
    project_features: int | None = None

    def __post_init__(self) -> None:
        require_positive(dimensions=self.dimensions, num_bands=self.num_bands)
        require(self.max_frequency >= 1, "max_frequency", self.max_frequency, "a frequency >= 1")
        require(self.feature_channels >= 0, "feature_channels", self.feature_channels, "a count >= 0")
        require_optional_positive(project_features=self.project_features)
        require(
            self.project_features is None or self.feature_channels > 0,
            "project_features",
            self.project_features,
            "none without feature_channels",
        )

    @property
    def num_channels(self) -> int:
        features = self.project_features or self.feature_channels
        return (self.dimensions + self.radial_features) * (2 * self.num_bands + 1) + features

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``length`` points (default 64)."""
        points = torch.randn(batch, length or 64, self.dimensions + self.feature_channels, generator=generator)
        return points, torch.ones(points.shape[:2], dtype=torch.bool)

    def build(self) -> PointCloudInputAdapter:
        return PointCloudInputAdapter(self)
