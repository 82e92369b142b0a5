"""Second derivatives as a lesson: Newton's method, a Hessian's top eigenvalue, a physics-informed net.

What it shows: with ``create_graph=True`` a gradient is itself a differentiable program, so
autograd gives second (and third) derivatives with no new math. Three uses:

1. Newton's method vs gradient descent on L2-regularised logistic regression (breast-cancer
   data). The Hessian H comes from ``minidl.autograd.functional.hessian``; a Newton step solves
   H d = -g. Newton reaches a gradient norm of 1e-8 in a handful of iterations, gradient descent
   (at its best fixed step, 1/λ_max) needs hundreds or thousands.
2. The top eigenvalue λ_max of a loss's Hessian by power iteration on Hessian-vector products
   (v -> Hv -> Hv/|Hv|), never forming H: one HVP is a backward through the gradient,
   ``grad(g, params, grad_outputs=v)`` with g = ``grad(loss, params, create_graph=True)``. For the
   logistic loss it is checked against the eigenvalues of the explicit Hessian; for a 64-32-10 MLP
   on the 8x8 digits it is measured at initialisation and after training. λ_max sets the largest
   stable gradient-descent step: lr < 2/λ_max.
3. A physics-informed network (PINN) that solves u'' = -u on [0, 2π] with u(0) = 0, u'(0) = 1
   (solution: sin x). The network u(x) is a 1-32-32-1 tanh MLP; its loss is the ODE residual
   u''(x) + u(x) at collocation points, where u'' is the second derivative of the network with
   respect to its input — so training differentiates a second derivative (third order).

Run::

    python examples/second_order.py          # all three parts: newton.png, eigenvalue.png, pinn.png
    python examples/second_order.py --quick  # fewer steps (the test suite)
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.autograd import functional, grad
from minidl.optim import Adam

from _common import Stopwatch, make_parser, new_figure, plot_losses, prepare, save_figure


# ----- 1. Newton's method vs gradient descent --------------------------------------------------
def load_breast_cancer():
    """Standardised breast-cancer features with a column of ones (the bias), labels in {0, 1}."""
    try:
        from sklearn.datasets import load_breast_cancer as load
    except ImportError as error:
        raise SystemExit('this example needs scikit-learn: pip install "minidl[data]"') from error
    features, labels = load(return_X_y=True)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)  # (N, 31)
    return minidl.tensor(features), minidl.tensor(labels.astype(np.float64))


def logistic_loss(weight, features, labels, l2: float):
    """Mean binary cross-entropy of sigmoid(features @ weight), plus l2/2 |weight|²."""
    logits = features @ weight  # (N,)
    return (minidl.softplus(logits) - labels * logits).mean() + 0.5 * l2 * (weight * weight).sum()


def newton_vs_gradient_descent(features, labels, l2: float, tolerance: float, max_steps: int):
    """Gradient norms per iteration for both methods, started from zero, and λ_max at the optimum."""
    def loss_of(weight):
        return logistic_loss(weight, features, labels, l2)

    weight = minidl.zeros(features.shape[1], dtype=minidl.float64)
    newton = []
    for _ in range(max_steps):
        weight.requires_grad_(True)
        (gradient,) = grad(loss_of(weight), [weight])
        newton.append(float(np.linalg.norm(gradient.numpy())))
        if newton[-1] < tolerance:
            break
        hessian = functional.hessian(loss_of, weight).numpy()  # (D, D)
        step = np.linalg.solve(hessian, -gradient.numpy())  # H d = -g
        weight = minidl.tensor(weight.numpy() + step)
    eigenvalues = np.linalg.eigvalsh(functional.hessian(loss_of, weight).numpy())

    # Gradient descent's best fixed step for a function with curvature in [λ_min, λ_max] is about
    # 1/λ_max; λ_max is largest at the start here (all predictions 0.5), so use that one.
    start = minidl.zeros(features.shape[1], dtype=minidl.float64)
    lr = 1.0 / float(np.linalg.eigvalsh(functional.hessian(loss_of, start).numpy())[-1])
    weight, descent = start, []
    for _ in range(max_steps):
        weight.requires_grad_(True)
        (gradient,) = grad(loss_of(weight), [weight])
        descent.append(float(np.linalg.norm(gradient.numpy())))
        if descent[-1] < tolerance:
            break
        weight = minidl.tensor(weight.numpy() - lr * gradient.numpy())
    return newton, descent, eigenvalues


# ----- 2. a Hessian's top eigenvalue from Hessian-vector products -------------------------------
def hessian_vector_product(loss, params, vectors):
    """H v for the Hessian of ``loss`` with respect to ``params``: a backward through the gradient."""
    gradients = grad(loss, params, create_graph=True)
    return grad(gradients, params, grad_outputs=vectors)


def top_eigenvalue(loss_fn, params, iterations: int, seed: int):
    """λ_max of the Hessian of ``loss_fn()`` by power iteration; also the estimate per iteration."""
    rng = np.random.default_rng(seed)
    vectors = [rng.standard_normal(p.shape) for p in params]
    estimates = []
    for _ in range(iterations):
        norm = np.sqrt(sum((v * v).sum() for v in vectors))
        vectors = [v / norm for v in vectors]
        products = hessian_vector_product(loss_fn(), params,
                                          [minidl.tensor(v, dtype=p.dtype) for v, p in
                                           zip(vectors, params)])
        products = [h.numpy() for h in products]
        estimates.append(float(sum((v * h).sum() for v, h in zip(vectors, products))))  # vᵀHv
        vectors = products
    return estimates[-1], estimates


def mlp_eigenvalues(epochs: int, iterations: int, seed: int):
    """λ_max of a 64-32-10 MLP's cross-entropy Hessian on the 8x8 digits, before and after training."""
    from sklearn.datasets import load_digits
    images, labels = load_digits(return_X_y=True)
    x = minidl.tensor(images / 16.0, dtype=minidl.float64)  # (1797, 64)
    y = minidl.tensor(labels)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    params = list(model.parameters())

    def loss_fn():
        return nn.functional.cross_entropy(model(x), y)

    before, curve = top_eigenvalue(loss_fn, params, iterations, seed)
    optimizer = Adam(params, lr=1e-2)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
    after, _ = top_eigenvalue(loss_fn, params, iterations, seed)
    return before, after, curve, loss.item()


# ----- 3. a physics-informed network for u'' = -u ------------------------------------------------
def pinn(steps: int, points: int, seed: int):
    """Train u(x) so that u'' + u = 0, u(0) = 0, u'(0) = 1 on [0, 2π]; returns the model and losses."""
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 1)).double()
    optimizer = Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    zero = minidl.zeros((1, 1), dtype=minidl.float64, requires_grad=True)
    losses = []
    for _ in range(steps):
        x = minidl.tensor(rng.uniform(0, 2 * np.pi, (points, 1)), requires_grad=True)  # (P, 1)
        u = model(x)  # (P, 1)
        (du,) = grad(u.sum(), [x], create_graph=True)  # u'(x): each u depends on its own x only
        (d2u,) = grad(du.sum(), [x], create_graph=True)  # u''(x)
        residual = ((d2u + u) ** 2).mean()
        u0 = model(zero)
        (du0,) = grad(u0.sum(), [zero], create_graph=True)
        loss = residual + (u0 ** 2).sum() + ((du0 - 1) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()  # through u'' : third derivatives of the network
        optimizer.step()
        losses.append(loss.item())
    return model, losses


# ----- the report ---------------------------------------------------------------------------------
def plot_results(out, newton, descent, curve, exact, model):
    figure = new_figure(13, 3.5)
    left, middle, right = figure.subplots(1, 3)
    left.semilogy(range(len(newton)), newton, marker=".", label=f"Newton ({len(newton) - 1} steps)")
    left.semilogy(range(len(descent)), descent, label=f"gradient descent ({len(descent) - 1} steps)")
    left.set(title="logistic regression: |gradient|", xlabel="iteration", xscale="symlog")
    left.legend()
    middle.plot(range(1, len(curve) + 1), curve, marker=".", label="power iteration (vᵀHv)")
    middle.axhline(exact, color="C1", linestyle="--", label="eigvalsh of the full Hessian")
    middle.set(title="λ_max of the logistic loss's Hessian", xlabel="iteration")
    middle.legend()
    grid = np.linspace(0, 2 * np.pi, 200)[:, None]
    with minidl.no_grad():
        u = model(minidl.tensor(grid)).numpy()
    right.plot(grid, np.sin(grid), color="C1", linestyle="--", label="sin x")
    right.plot(grid, u, color="C0", label="PINN u(x)")
    right.set(title="u'' = -u, u(0) = 0, u'(0) = 1", xlabel="x")
    right.legend()
    for axes in (left, middle, right):
        axes.grid(alpha=0.3)
    return save_figure(figure, out / "second_order.png")


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="second_order", epochs=300)
    parser.add_argument("--pinn-steps", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.pinn_steps = 20, 60
    out = prepare(args)
    clock = Stopwatch()

    features, labels = load_breast_cancer()
    newton, descent, eigenvalues = newton_vs_gradient_descent(
        features, labels, l2=1e-2, tolerance=1e-8, max_steps=200 if args.quick else 20000)
    print(f"Newton: |g| < 1e-8 after {len(newton) - 1} iterations; gradient descent: "
          f"{len(descent) - 1} iterations (|g| = {descent[-1]:.1e}); condition number of H at the "
          f"optimum {eigenvalues[-1] / eigenvalues[0]:.0f}")

    weight = minidl.zeros(features.shape[1], dtype=minidl.float64, requires_grad=True)
    power, curve = top_eigenvalue(lambda: logistic_loss(weight, features, labels, 1e-2), [weight],
                                  iterations=30, seed=args.seed)
    exact = float(np.linalg.eigvalsh(functional.hessian(
        lambda w: logistic_loss(w, features, labels, 1e-2), weight).numpy())[-1])
    print(f"logistic loss at w = 0: λ_max by power iteration on HVPs {power:.6f}, "
          f"by eigvalsh of the full Hessian {exact:.6f}")

    before, after, _, mlp_loss = mlp_eigenvalues(args.epochs, iterations=20, seed=args.seed)
    print(f"MLP on the 8x8 digits: λ_max {before:.3f} at initialisation, {after:.3f} after "
          f"{args.epochs} Adam steps (loss {mlp_loss:.4f}); gradient descent is stable for "
          f"lr < 2/λ_max = {2 / after:.3f}")

    model, pinn_losses = pinn(args.pinn_steps, points=64, seed=args.seed)
    grid = np.linspace(0, 2 * np.pi, 200)[:, None]
    with minidl.no_grad():
        error = float(np.abs(model(minidl.tensor(grid)).numpy() - np.sin(grid)).max())
    print(f"PINN after {args.pinn_steps} steps: loss {pinn_losses[-1]:.2e}, "
          f"max |u(x) - sin x| on [0, 2π] = {error:.4f}")

    plot_results(out, newton, descent, curve, exact, model)
    plot_losses(out / "pinn_loss.png", pinn_losses, title="PINN loss (residual + initial values)",
                log_scale=True)
    print(f"done in {clock():.1f}s; pictures in {out}")
    return {"losses": pinn_losses, "newton_steps": len(newton) - 1,
            "descent_steps": len(descent) - 1, "power_eigenvalue": power, "exact_eigenvalue": exact,
            "mlp_eigenvalues": (before, after), "pinn_max_error": error}


if __name__ == "__main__":
    main()
