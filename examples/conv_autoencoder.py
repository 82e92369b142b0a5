"""A convolutional autoencoder on MNIST: squeeze each digit through 32 numbers and back.

What it shows: an encoder of strided ``Conv2d`` layers (each halves the image: 28 -> 14 -> 7) and a
linear bottleneck, mirrored by a decoder of ``ConvTranspose2d`` layers (7 -> 14 -> 28, with
``output_padding=1`` to land exactly on even sizes) ending in a sigmoid; trained without labels to
reproduce its input (pixel-wise binary cross-entropy on logits), with BatchNorm in the conv stacks
and AdamW. Reports the test reconstruction MSE, and draws test digits above their reconstructions
and a walk through the latent space between two digits.

Run::

    python examples/conv_autoencoder.py           # 10k MNIST images, 3 epochs; test MSE, PNGs
    python examples/conv_autoencoder.py --quick   # a few steps (the test suite)
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.datasets import load_mnist
from minidl.optim import AdamW

from _common import Stopwatch, batches, make_parser, plot_image_grid, plot_losses, prepare


class ConvAutoencoder(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> (N, latent) code -> (N, 1, 28, 28) logits."""

    def __init__(self, latent: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # (N,16,14,14)
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),  # (N,32,7,7)
            nn.Flatten(),  # (N, 1568)
            nn.Linear(32 * 7 * 7, latent),  # (N, latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 32 * 7 * 7), nn.ReLU(),  # (N, 1568)
            nn.Unflatten(1, (32, 7, 7)),  # (N, 32, 7, 7)
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),  # (N,16,14,14)
            nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),  # (N,1,28,28)
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def reconstruct(model, images: np.ndarray, device: str) -> np.ndarray:
    """Reconstructions in [0, 1] of (N, 1, 28, 28) images, in eval mode."""
    model.eval()
    with minidl.no_grad():
        logits = model(minidl.tensor(images, device=device))
    model.train()
    return minidl.sigmoid(logits).numpy()


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="conv_autoencoder", epochs=3, lr=3e-3, batch_size=64)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--latent", type=int, default=32, help="size of the bottleneck code")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size = 1, 320
    out = prepare(args)

    x_train = load_mnist(train=True)[0][:args.train_size]  # (N, 1, 28, 28) in [0, 1]
    x_test = load_mnist(train=False)[0][:200 if args.quick else 2000]
    model = ConvAutoencoder(args.latent).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()  # each pixel is a probability of "ink"
    rng = np.random.default_rng(args.seed)

    losses, clock = [], Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for index in batches(len(x_train), args.batch_size, rng):
            x = minidl.tensor(x_train[index], device=args.device)  # (B, 1, 28, 28)
            loss = loss_fn(model(x), x)  # the input is its own target
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"epoch {epoch}  loss {np.mean(losses[-50:]):.4f}  {clock():.0f}s")

    rebuilt = np.concatenate([reconstruct(model, x_test[i:i + 500], args.device)
                              for i in range(0, len(x_test), 500)])  # (N, 1, 28, 28)
    mse = float(((rebuilt - x_test) ** 2).mean())
    print(f"test reconstruction MSE {mse:.4f} per pixel on {len(x_test)} images ({clock():.0f}s)")

    plot_losses(out / "loss.png", losses, title="reconstruction loss (BCE per pixel)")
    pairs = np.concatenate([x_test[:10], rebuilt[:10]])  # (20, 1, 28, 28): originals, then copies
    plot_image_grid(out / "reconstructions.png", pairs, columns=10,
                    title=f"test digits (top) and their reconstructions (bottom), MSE {mse:.4f}")
    walk = interpolate(model, x_test[0], x_test[1], args.device)  # (10, 1, 28, 28)
    plot_image_grid(out / "interpolation.png", walk, columns=10,
                    title="decoding points on the line between two codes")
    print(f"pictures in {out}/")
    return {"losses": losses, "test_mse": mse}


def interpolate(model, first: np.ndarray, second: np.ndarray, device: str,
                steps: int = 10) -> np.ndarray:
    """Decode ``steps`` codes evenly spaced between the codes of two (1, 28, 28) images."""
    model.eval()
    with minidl.no_grad():
        codes = model.encoder(minidl.tensor(np.stack([first, second]), device=device)).numpy()
        weights = np.linspace(0, 1, steps, dtype=np.float32)[:, None]  # (steps, 1)
        mixed = (1 - weights) * codes[0] + weights * codes[1]  # (steps, latent)
        images = minidl.sigmoid(model.decoder(minidl.tensor(mixed, device=device))).numpy()
    model.train()
    return images  # (steps, 1, 28, 28)


if __name__ == "__main__":
    main()
