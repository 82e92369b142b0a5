"""A small MLP for regression on scikit-learn's diabetes data, compared with a linear model.

What it shows: regression with a hidden layer, 10 - 100 - 1 with ReLU, trained with Adam on MSE
through ``minidl.train.fit``; the target is standardised for training (and mapped back for the
report); on a dataset this small (353 training patients) the MLP overfits quickly, so a validation
split, weight decay, ``ReduceLROnPlateau`` and early stopping that restores the best weights do the
real work. The test MSE is printed next to the exact least-squares linear baseline: with ten
features and little data, a straight line is hard to beat, which is itself worth seeing.

Run::

    python examples/mlp_regression.py           # test MSE of the MLP and of the linear baseline
    python examples/mlp_regression.py --quick   # a few epochs (the test suite)
"""
from __future__ import annotations

import numpy as np

from minidl import nn
from minidl.datasets import train_test_split
from minidl.metrics import mean_squared_error, r2_score
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import ReduceLROnPlateau
from minidl.train import EarlyStopping, fit, predict

from _common import Stopwatch, load_diabetes, make_parser, prepare


def build_mlp(in_features: int = 10, hidden: int = 100) -> nn.Module:
    """(N, 10) standardised features -> (N, 1) standardised prediction."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def with_bias(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D + 1): a column of ones, so least squares fits the intercept too."""
    return np.hstack([x, np.ones((len(x), 1), x.dtype)])


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="mlp_regression", epochs=200, lr=1e-3, batch_size=32)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)
    epochs = 5 if args.quick else args.epochs
    out = prepare(args)

    x_train, y_train, x_test, y_test = load_diabetes()  # (N, 10), (N, 1)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.15)
    y_mean, y_std = y_train.mean(), y_train.std()
    target_train, target_val = (y_train - y_mean) / y_std, (y_val - y_mean) / y_std  # (N, 1)

    model = build_mlp().to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=8)
    stopper = EarlyStopping(monitor="val_loss", patience=25, restore_best_weights=True)
    clock = Stopwatch()
    history = fit(model, (x_train, target_train), nn.MSELoss(), optimizer, epochs=epochs,
                  batch_size=args.batch_size, validation_data=(x_val, target_val), metrics=[],
                  scheduler=scheduler, callbacks=[stopper], device=args.device, verbose=0)
    predicted = predict(model, x_test, batch_size=512).numpy() * y_std + y_mean  # (N, 1)
    mse, r2 = mean_squared_error(y_test, predicted), r2_score(y_test, predicted)

    # The linear baseline: least squares on train + validation, with a bias column.
    x_fit, y_fit = np.vstack([x_train, x_val]), np.vstack([y_train, y_val])  # (N, 10), (N, 1)
    coefficients = np.linalg.lstsq(with_bias(x_fit), y_fit, rcond=None)[0]  # (11, 1)
    linear = with_bias(x_test) @ coefficients  # (N, 1)
    linear_mse, linear_r2 = mean_squared_error(y_test, linear), r2_score(y_test, linear)
    best = stopper.best_epoch + 1 if stopper.best_epoch is not None else len(history["loss"])
    print(f"trained {len(history['loss'])} epochs (best validation at epoch {best}) in "
          f"{clock():.1f}s")
    print(f"test MSE: MLP {mse:.0f} (R² {r2:.3f})   linear least squares {linear_mse:.0f} "
          f"(R² {linear_r2:.3f})")

    history.plot(out / "curves.png")
    plot_predictions(out / "predictions.png", y_test, {f"MLP (MSE {mse:.0f})": predicted,
                                                       f"linear (MSE {linear_mse:.0f})": linear})
    print(f"pictures in {out}/")
    return {"losses": history["loss"], "test_mse": mse, "test_r2": r2,
            "linear_test_mse": linear_mse, "linear_test_r2": linear_r2}


def plot_predictions(path, y_true, predictions: dict) -> None:
    """Predicted against true progression, one colour per model, with the diagonal."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    for name, predicted in predictions.items():
        axes.scatter(y_true[:, 0], predicted[:, 0], s=12, alpha=0.6, label=name)
    low, high = float(y_true.min()), float(y_true.max())
    axes.plot([low, high], [low, high], color="gray", linestyle=":")
    axes.set(title="diabetes test set", xlabel="true progression", ylabel="predicted")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
