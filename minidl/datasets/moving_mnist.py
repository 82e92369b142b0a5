"""Moving MNIST: digits bouncing in a larger frame, built from MNIST images with NumPy."""
from __future__ import annotations

import numpy as np


def make_moving_digits(images: np.ndarray, labels: np.ndarray, count: int, frames: int = 16,
                       size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clips of one digit moving in a straight line and bouncing off the walls.

    Args:
        images: (N, 28, 28) or (N, 1, 28, 28) digit images, float in [0, 1].
        labels: (N,) digit labels; a clip's label is its digit's.
        count: number of clips.
        frames: frames per clip.
        size: frame side in pixels (≥ 28).
        seed: for the choice of digits, start positions and velocities.

    Returns:
        clips (count, 1, frames, size, size) float32 and labels (count,) int64.
    """
    images = images.reshape(len(images), 28, 28)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(images), count)
    clips = np.zeros((count, 1, frames, size, size), dtype=np.float32)
    room = size - 28
    for clip, index in enumerate(chosen):
        position = rng.uniform(0, room, 2)
        velocity = rng.uniform(-3, 3, 2)
        for frame in range(frames):
            row, col = np.round(position).astype(int)
            clips[clip, 0, frame, row:row + 28, col:col + 28] = np.maximum(
                clips[clip, 0, frame, row:row + 28, col:col + 28], images[index])
            position += velocity
            for axis in range(2):  # bounce off the walls
                if not 0 <= position[axis] <= room:
                    velocity[axis] = -velocity[axis]
                    position[axis] = np.clip(position[axis], 0, room)
    return clips, labels[chosen].astype(np.int64)
