"""Point clouds sampled from the surfaces of 3-D shapes in random poses and sizes (trimesh)."""

from __future__ import annotations

import numpy as np
import torch

from omniperceiver.data.splits import Splits, require_module, stratified_split

SHAPES = ("box", "icosphere", "cylinder", "cone", "capsule", "torus", "annulus")


def _mesh(trimesh, shape: str):
    creation = trimesh.creation
    return {
        "box": lambda: creation.box(),
        "icosphere": lambda: creation.icosphere(subdivisions=2),
        "cylinder": lambda: creation.cylinder(radius=0.5, height=1.0),
        "cone": lambda: creation.cone(radius=0.5, height=1.0),
        "capsule": lambda: creation.capsule(radius=0.35, height=0.6),
        "torus": lambda: creation.torus(major_radius=0.5, minor_radius=0.15),
        "annulus": lambda: creation.annulus(r_min=0.3, r_max=0.5, height=0.3),
    }[shape]()


def shapes(*, clouds_per_shape: int = 150, points: int = 512, seed: int = 0) -> Splits:
    """``clouds_per_shape`` clouds of ``points`` points (B, P, 3) per shape class, each rotated at random,
    scaled by 0.6-1.4 (and stretched by up to 15% per axis) and centred; a shape's class is only in its
    geometry."""
    trimesh = require_module("trimesh", "pip install trimesh")
    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label, shape in enumerate(SHAPES):
        mesh = _mesh(trimesh, shape)
        for _ in range(clouds_per_shape):
            sampled, _ = trimesh.sample.sample_surface(mesh, points, seed=int(rng.integers(2**31)))
            rotation = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
            cloud = (sampled * rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, 3)) @ rotation.T
            clouds.append(cloud - cloud.mean(0))
            labels.append(label)
    description = f"{len(SHAPES)} shapes, {clouds_per_shape} clouds of {points} surface points each"
    tensors = (torch.tensor(np.stack(clouds), dtype=torch.float32), torch.tensor(labels))
    return stratified_split("shapes", tensors, SHAPES, description, seed=seed)
