"""Linear regression, y = w·x + b, fitted by gradient descent: the first model worth training.

What it shows: ``nn.Linear`` is the model, ``nn.MSELoss`` the loss and ``optim.SGD`` the update
``w <- w - lr * dL/dw``; the same few lines fit three problems:

1. synthetic points on y = 2x (plus noise): the fitted slope comes out as w ≈ 2.00;
2. a short price series (twelve illustrative monthly prices): the fitted trend line, extended one
   step, is the simplest forecast there is;
3. scikit-learn's diabetes data (442 patients, 10 standardised features): the model's R² on
   held-out patients, next to the exact least-squares solution as a check.

Run::

    python examples/linear_regression.py           # prints w, b and the test R²; writes fits.png
    python examples/linear_regression.py --quick   # fewer steps (the test suite)
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.metrics import r2_score
from minidl.optim import SGD

from _common import Stopwatch, load_diabetes, make_parser, plot_losses, prepare

# Twelve monthly prices (an illustrative series, not market data): a trend plus wiggles.
PRICES = np.array([101.2, 102.9, 102.1, 104.8, 106.0, 105.1, 107.9, 109.2, 108.4, 111.0, 112.3,
                   112.1], dtype=np.float32)


def fit_line(x: np.ndarray, y: np.ndarray, steps: int, lr: float, device: str):
    """Full-batch gradient descent on MSE; x (N, D), y (N, 1). Returns (model, losses)."""
    model = nn.Linear(x.shape[1], 1).to(device)
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.MSELoss()
    inputs, targets = minidl.tensor(x, device=device), minidl.tensor(y, device=device)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(inputs), targets)  # (N, 1) vs (N, 1) -> scalar
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="linear_regression", epochs=200, lr=0.05)
    args = parser.parse_args(argv)
    steps = 20 if args.quick else args.epochs  # full-batch: one step per epoch
    out = prepare(args)
    clock = Stopwatch()

    # 1. y = 2x + noise
    x = np.random.uniform(-1, 1, size=(100, 1)).astype(np.float32)  # (N, 1)
    y = 2 * x + 0.05 * np.random.randn(100, 1).astype(np.float32)  # (N, 1)
    line, line_losses = fit_line(x, y, steps, args.lr, args.device)
    w, b = line.weight.numpy().item(), line.bias.numpy().item()
    print(f"y = 2x:    fitted w = {w:.2f}, b = {b:+.2f}  (loss {line_losses[-1]:.4f})")

    # 2. the price series: month index (scaled to [0, 1]) -> price (centred, so one lr suits all)
    months = (np.arange(len(PRICES), dtype=np.float32) / (len(PRICES) - 1))[:, None]  # (12, 1)
    centre = PRICES.mean()
    trend, price_losses = fit_line(months, (PRICES - centre)[:, None], 3 * steps, args.lr,
                                   args.device)
    next_month = minidl.tensor([[len(PRICES) / (len(PRICES) - 1)]], device=args.device)
    with minidl.no_grad():
        forecast = trend(next_month).item() + centre
    slope = trend.weight.numpy().item() / (len(PRICES) - 1)
    print(f"prices:    trend {slope:+.2f} per month, next month ≈ {forecast:.1f}")

    # 3. diabetes: ten features -> disease progression a year later
    x_train, y_train, x_test, y_test = load_diabetes()
    model, diabetes_losses = fit_line(x_train, y_train, steps, args.lr, args.device)
    with minidl.no_grad():
        predicted = model(minidl.tensor(x_test, device=args.device)).numpy()  # (N, 1)
    r2 = r2_score(y_test, predicted)
    design = np.hstack([x_train, np.ones((len(x_train), 1), np.float32)])  # (N, 11): bias column
    exact = np.linalg.lstsq(design, y_train, rcond=None)[0]  # (11, 1)
    r2_exact = r2_score(y_test, np.hstack([x_test, np.ones((len(x_test), 1))]) @ exact)
    print(f"diabetes:  test R² {r2:.3f} by gradient descent, {r2_exact:.3f} by least squares "
          f"({clock():.1f}s)")

    plot_losses(out / "loss.png", {"y = 2x": line_losses, "diabetes (÷1000)":
                                   [value / 1000 for value in diabetes_losses]},
                title="mean squared error per step", log_scale=True)
    plot_fits(out / "fits.png", (x, y, w, b), (months, slope, forecast, centre, trend, args.device),
              (y_test, predicted, r2))
    print(f"pictures in {out}/")
    return {"losses": line_losses, "w": w, "b": b, "price_forecast": forecast,
            "price_losses": price_losses, "diabetes_losses": diabetes_losses, "test_r2": r2,
            "test_r2_least_squares": r2_exact}


def plot_fits(path, line, prices, diabetes) -> None:
    """Three panels: the fitted line, the price trend with its forecast, predicted vs. true."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 3.8))
    left, middle, right = figure.subplots(1, 3)
    x, y, w, b = line
    left.scatter(x[:, 0], y[:, 0], s=8, alpha=0.6)
    grid = np.linspace(-1, 1, 2)
    left.plot(grid, w * grid + b, color="C3", label=f"y = {w:.2f}x {b:+.2f}")
    left.set(title="synthetic y = 2x + noise", xlabel="x", ylabel="y")
    left.legend()

    months, slope, forecast, centre, trend, device = prices
    count = len(PRICES)
    with minidl.no_grad():
        fitted = trend(minidl.tensor(months, device=device)).numpy()[:, 0] + centre  # (12,)
    middle.plot(range(1, count + 1), PRICES, marker="o", label="price")
    middle.plot(range(1, count + 1), fitted, color="C3", label=f"trend {slope:+.2f}/month")
    middle.plot([count, count + 1], [fitted[-1], forecast], color="C3", linestyle="--",
                marker="x", label=f"forecast {forecast:.1f}")
    middle.set(title="a short price series (illustrative)", xlabel="month", ylabel="price")
    middle.legend()

    y_test, predicted, r2 = diabetes
    right.scatter(y_test[:, 0], predicted[:, 0], s=10, alpha=0.7)
    low, high = float(y_test.min()), float(y_test.max())
    right.plot([low, high], [low, high], color="gray", linestyle=":")
    right.set(title=f"diabetes test set, R² = {r2:.2f}", xlabel="true", ylabel="predicted")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
