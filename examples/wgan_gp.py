"""A Wasserstein GAN with gradient penalty (WGAN-GP) whose convolutional critic is kept 1-Lipschitz
by a second derivative.

What it shows: the critic D scores images (no sigmoid); its loss E[D(fake)] - E[D(real)] estimates
minus the Wasserstein-1 distance between the real and generated digits, which is only meaningful
for a 1-Lipschitz D. Gulrajani et al. (2017) enforce that softly: at random points x̂ between a
real and a fake image the penalty λ (|∇ₓ D(x̂)| - 1)² pulls the input-gradient norm to 1. The
penalty contains a gradient, so the critic's update differentiates a gradient:
``grad(D(x̂).sum(), x̂, create_graph=True)`` keeps that gradient on the graph, and the backward of
the loss goes through the convolutions' and LeakyReLUs' backward rules a second time. The
generator (transposed convolutions) steps once per ``--n-critic`` critic steps.

Printed: the Wasserstein estimate E[D(real)] - E[D(fake)] (it shrinks as the fakes improve) and
the mean |∇ₓ D(x̂)| (held near 1 by the penalty).

Run::

    python examples/wgan_gp.py          # 10,000 MNIST digits: samples.png, loss.png
    python examples/wgan_gp.py --quick  # a few steps (the test suite)
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.autograd import grad
from minidl.datasets import load_mnist
from minidl.optim import Adam

from _common import Stopwatch, make_parser, plot_image_grid, plot_losses, prepare


def build_generator(noise: int = 64) -> nn.Module:
    """(N, noise) -> (N, 1, 28, 28) images in [-1, 1]."""
    return nn.Sequential(
        nn.Linear(noise, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),  # (N, 64, 7, 7)
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (N, 32, 14, 14)
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Tanh(),  # (N, 1, 28, 28)
    )


def build_critic() -> nn.Module:
    """(N, 1, 28, 28) -> (N, 1) scores. No BatchNorm: the penalty is per sample."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (N, 32, 14, 14)
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (N, 64, 7, 7)
        nn.Flatten(), nn.Linear(64 * 7 * 7, 1),  # (N, 1)
    )


def gradient_penalty(critic: nn.Module, real, fake, rng: np.random.Generator):
    """λ-free penalty E[(|∇ₓ D(x̂)| - 1)²] at x̂ = ε real + (1 - ε) fake, and the mean norm.

    ``create_graph=True`` makes ∇ₓ D(x̂) a Tensor with a graph, so the penalty can be
    backpropagated into the critic's weights (a second derivative of D).
    """
    epsilon = minidl.tensor(rng.random((real.shape[0], 1, 1, 1)).astype(np.float32),
                            device=real.device)  # (B, 1, 1, 1)
    mixed = (epsilon * real + (1 - epsilon) * fake).detach().requires_grad_()  # (B, 1, 28, 28)
    (slope,) = grad(critic(mixed).sum(), [mixed], create_graph=True)  # (B, 1, 28, 28)
    norms = ((slope * slope).sum(dim=(1, 2, 3)) + 1e-12).sqrt()  # (B,)
    return ((norms - 1) ** 2).mean(), float(norms.mean().item())


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="wgan_gp", epochs=400, lr=1e-4, batch_size=64)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--noise", type=int, default=64, help="size of the generator's input")
    parser.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    parser.add_argument("--penalty", type=float, default=10.0, help="λ of the gradient penalty")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size = 8, 640  # here an "epoch" is one generator step
    out = prepare(args)

    images = load_mnist(train=True)[0][:args.train_size] * 2 - 1  # (N, 1, 28, 28) in [-1, 1]
    generator = build_generator(args.noise).to(args.device)
    critic = build_critic().to(args.device)
    optimizer_g = Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.9))
    optimizer_d = Adam(critic.parameters(), lr=args.lr, betas=(0.5, 0.9))
    rng = np.random.default_rng(args.seed)
    noise = lambda count: minidl.randn(count, args.noise, device=args.device)  # noqa: E731

    critic_losses, distances, slopes, clock = [], [], [], Stopwatch()
    for step in range(1, args.epochs + 1):
        for _ in range(args.n_critic):
            index = rng.choice(len(images), args.batch_size, replace=False)
            real = minidl.tensor(images[index], device=args.device)  # (B, 1, 28, 28)
            fake = generator(noise(args.batch_size)).detach()  # G frozen for the critic's step
            distance = critic(real).mean() - critic(fake).mean()  # the Wasserstein estimate
            penalty, slope = gradient_penalty(critic, real, fake, rng)
            loss_d = -distance + args.penalty * penalty
            optimizer_d.zero_grad()
            loss_d.backward()  # through the penalty's gradient: a second derivative of D
            optimizer_d.step()
            critic_losses.append(loss_d.item())
            distances.append(distance.item())
            slopes.append(slope)

        loss_g = -critic(generator(noise(args.batch_size))).mean()
        optimizer_g.zero_grad()
        loss_g.backward()
        optimizer_g.step()
        if step % max(1, args.epochs // 10) == 0 or step == args.epochs:
            recent = slice(-10 * args.n_critic, None)
            print(f"generator step {step}  critic loss {np.mean(critic_losses[recent]):.3f}  "
                  f"Wasserstein estimate {np.mean(distances[recent]):.3f}  "
                  f"|∇D(x̂)| {np.mean(slopes[recent]):.3f}  {clock():.0f}s")

    with minidl.no_grad():
        samples = (generator(noise(32)).numpy() + 1) / 2  # (32, 1, 28, 28) in [0, 1]
    plot_image_grid(out / "samples.png", samples, title=f"WGAN-GP after {args.epochs} steps")
    plot_losses(out / "loss.png", {"critic loss": critic_losses,
                                   "Wasserstein estimate": distances},
                title="WGAN-GP: critic loss and the Wasserstein estimate", xlabel="critic step")
    print(f"pictures in {out}/ ({clock():.0f}s)")
    return {"losses": critic_losses, "distances": distances, "slopes": slopes,
            "seconds": clock()}


if __name__ == "__main__":
    main()
