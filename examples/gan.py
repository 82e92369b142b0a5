"""A generative adversarial network (MLP generator and discriminator) that learns to draw digits.

What it shows: two networks trained against each other. The discriminator D sees real MNIST
digits and the generator's fakes and learns to tell them apart (binary cross-entropy on logits,
with one-sided label smoothing: real = 0.9); the generator G turns random noise z into images and
learns to make D say "real" (the non-saturating loss, -log D(G(z))). ``detach()`` keeps D's step
from changing G; Adam with beta1 = 0.5, LeakyReLU and dropout in D are the usual stabilisers.
A fixed batch of noise is drawn after every epoch, so the PNGs show the same 32 fakes improving.

Run::

    python examples/gan.py           # 10,000 MNIST digits, 15 epochs: samples_epoch*.png, loss.png
    python examples/gan.py --quick   # a few steps (the test suite)
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.datasets import load_mnist
from minidl.optim import Adam

from _common import Stopwatch, batches, make_parser, plot_image_grid, plot_losses, prepare


def build_generator(noise: int = 64, hidden: int = 256) -> nn.Module:
    """(N, noise) -> (N, 1, 28, 28) images in [-1, 1]."""
    return nn.Sequential(
        nn.Linear(noise, hidden), nn.LeakyReLU(0.2),  # (N, hidden)
        nn.Linear(hidden, 2 * hidden), nn.BatchNorm1d(2 * hidden), nn.LeakyReLU(0.2),
        nn.Linear(2 * hidden, 28 * 28), nn.Tanh(),  # (N, 784)
        nn.Unflatten(1, (1, 28, 28)),  # (N, 1, 28, 28)
    )


def build_discriminator(hidden: int = 256, dropout: float = 0.3) -> nn.Module:
    """(N, 1, 28, 28) images in [-1, 1] -> (N, 1) logits of "real"."""
    return nn.Sequential(
        nn.Flatten(),  # (N, 784)
        nn.Linear(28 * 28, 2 * hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
        nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
        nn.Linear(hidden, 1),  # (N, 1)
    )


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="gan", epochs=15, lr=2e-4, batch_size=64)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--noise", type=int, default=64, help="size of the generator's input")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size = 1, 640
    out = prepare(args)

    images = load_mnist(train=True)[0][:args.train_size] * 2 - 1  # (N, 1, 28, 28) in [-1, 1]
    generator = build_generator(args.noise).to(args.device)
    discriminator = build_discriminator().to(args.device)
    optimizer_g = Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    optimizer_d = Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    fixed_noise = minidl.randn(32, args.noise, device=args.device)  # (32, noise)
    rng = np.random.default_rng(args.seed)

    losses_d, losses_g, clock = [], [], Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for index in batches(len(images), args.batch_size, rng):
            real = minidl.tensor(images[index], device=args.device)  # (B, 1, 28, 28)
            size = len(index)
            fake = generator(minidl.randn(size, args.noise, device=args.device))  # (B, 1, 28, 28)

            # The discriminator: real -> 0.9 (one-sided smoothing), fake -> 0. detach(): G frozen.
            real_target = minidl.full((size, 1), 0.9, device=args.device)
            fake_target = minidl.zeros(size, 1, device=args.device)
            loss_d = bce(discriminator(real), real_target) + bce(discriminator(fake.detach()),
                                                                 fake_target)
            optimizer_d.zero_grad()
            loss_d.backward()
            optimizer_d.step()

            # The generator: make D call the fakes real.
            loss_g = bce(discriminator(fake), minidl.ones(size, 1, device=args.device))
            optimizer_g.zero_grad()
            loss_g.backward()
            optimizer_g.step()
            losses_d.append(loss_d.item())
            losses_g.append(loss_g.item())

        print(f"epoch {epoch}  D loss {np.mean(losses_d[-100:]):.3f}  G loss "
              f"{np.mean(losses_g[-100:]):.3f}  {clock():.0f}s")
        generator.eval()  # BatchNorm uses its running statistics to draw
        with minidl.no_grad():
            samples = (generator(fixed_noise).numpy() + 1) / 2  # (32, 1, 28, 28) in [0, 1]
        generator.train()
        plot_image_grid(out / f"samples_epoch{epoch:02d}.png", samples,
                        title=f"generated digits after epoch {epoch}")

    plot_losses(out / "loss.png", {"discriminator": losses_d, "generator": losses_g},
                title="GAN losses (a stalemate, not a minimum, is the goal)")
    print(f"pictures in {out}/ ({clock():.0f}s)")
    return {"losses": losses_d, "generator_losses": losses_g, "seconds": clock()}


if __name__ == "__main__":
    main()
