"""Plumbing shared by the examples: the command line, the output folder and the pictures.

Every example reads the same way::

    parser = make_parser(__doc__, name="mnist_cnn", epochs=3)
    parser.add_argument("--dataset", ...)          # the example's own options
    args = parser.parse_args(argv)
    out = prepare(args)                            # seeds minidl and NumPy, creates args.out
    ...
    plot_losses(out / "loss.png", losses)          # a loss curve, smoothed
    plot_image_grid(out / "samples.png", images)   # (N, H, W) or (N, 1, H, W) in [0, 1]
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_true, y_pred))

Also here: ``batches`` (shuffled index batches), ``Stopwatch``, ``classification_report``
(accuracy and macro precision/recall/F1), ``load_diabetes`` (a standardised split), ``smooth`` and
``new_figure``/``save_figure`` for pictures of one's own. The pictures are drawn on a bare
``matplotlib.figure.Figure`` (no pyplot, no window, no global state), so an example runs the same
on a server, in a test and in a notebook.
"""
from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

import minidl
from minidl.datasets import train_test_split


def make_parser(doc: str, name: str, epochs: int, lr: float | None = None,
                batch_size: int | None = None) -> argparse.ArgumentParser:
    """The options every example has: --quick, --device, --epochs, --out, --seed (and maybe more).

    Args:
        doc: the example's module docstring; its first line becomes the description.
        name: the example's name; output goes to ``runs/<name>/`` unless ``--out`` says otherwise.
        epochs: the default number of epochs.
        lr, batch_size: when given, add ``--lr`` / ``--batch-size`` with these defaults.
    """
    parser = argparse.ArgumentParser(description=(doc or name).strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few steps on a little data: checks that it runs (the tests use it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--out", default=str(pathlib.Path("runs") / name),
                        help=f"folder for the pictures (default: runs/{name})")
    parser.add_argument("--seed", type=int, default=0)
    if lr is not None:
        parser.add_argument("--lr", type=float, default=lr)
    if batch_size is not None:
        parser.add_argument("--batch-size", type=int, default=batch_size)
    return parser


def prepare(args: argparse.Namespace) -> pathlib.Path:
    """Seed minidl and NumPy from ``args.seed``, create ``args.out`` and return it as a Path."""
    minidl.manual_seed(args.seed)
    np.random.seed(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def batches(count: int, batch_size: int, rng: np.random.Generator | None = None):
    """Yield index arrays that cover ``range(count)`` in batches, shuffled when ``rng`` is given."""
    order = rng.permutation(count) if rng is not None else np.arange(count)
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]


def train_step(model, loss_fn, optimizer, scheduler, x, y, max_norm: float = 1.0) -> float:
    """One step of the vision examples' recipe: the loss, its backward, the gradients clipped to a
    total 2-norm of ``max_norm``, the optimizer's and the scheduler's step. Returns the loss."""
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    minidl.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


class Stopwatch:
    """Seconds since creation: ``clock = Stopwatch(); ...; print(f"{clock():.1f}s")``."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def classification_report(y_true, y_pred, num_classes: int) -> dict:
    """Accuracy and the macro-averaged precision, recall and F1 of integer class predictions."""
    from minidl import metrics

    macro = {"average": "macro", "num_classes": num_classes}
    return {"accuracy": metrics.accuracy(y_true, y_pred),
            "precision": metrics.precision(y_true, y_pred, **macro),
            "recall": metrics.recall(y_true, y_pred, **macro),
            "f1_score": metrics.f1_score(y_true, y_pred, **macro)}


def load_diabetes():
    """scikit-learn's diabetes data: standardised features (N, 10), targets (N, 1), 80/20 split.

    The split draws from minidl's global generator (seeded by :func:`prepare`); the features are
    standardised with the training part's mean and std.
    """
    try:
        from sklearn import datasets
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "minidl[data]"') from None
    features, target = datasets.load_diabetes(return_X_y=True)
    features, target = features.astype(np.float32), target.astype(np.float32)[:, None]  # (N, 1)
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.2)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


# ----------------------------------------------------------------------------- pictures


def new_figure(width: float, height: float):
    """A bare matplotlib Figure (no pyplot state); draw on ``figure.subplots()``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit("the examples draw with matplotlib: pip install matplotlib") from None
    return Figure(figsize=(width, height))


def save_figure(figure, path) -> pathlib.Path:
    """Lay out ``figure`` and write it to ``path`` as a PNG (or SVG/PDF, by the suffix)."""
    path = pathlib.Path(path)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (fewer at the ends), to read a noisy curve."""
    values = np.asarray(values, dtype=np.float64)
    kernel = np.ones(max(1, min(window, len(values))))
    sums = np.convolve(values, kernel, mode="same")  # (N,)
    counts = np.convolve(np.ones_like(values), kernel, mode="same")  # (N,): points in each window
    return sums / counts


def plot_losses(path, curves, title: str = "training loss", xlabel: str = "step",
                log_scale: bool = False) -> pathlib.Path:
    """Write a PNG of one or more loss curves.

    Args:
        curves: a list of values (one curve, named "loss") or a dict ``{label: values}``; each
            curve is drawn faintly as it is and boldly smoothed when it has more than 50 points.
        log_scale: a logarithmic y axis (for losses that fall by orders of magnitude).
    """
    if not isinstance(curves, dict):
        curves = {"loss": curves}
    figure = new_figure(6, 3.5)
    axes = figure.subplots()
    for index, (label, values) in enumerate(curves.items()):
        color = f"C{index}"
        steps = np.arange(1, len(values) + 1)
        if len(values) > 50:
            axes.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            axes.plot(steps, smooth(values, len(values) // 25), color=color, label=label)
        else:
            axes.plot(steps, values, color=color, marker=".", label=label)
    axes.set(title=title, xlabel=xlabel, ylabel="loss", yscale="log" if log_scale else "linear")
    axes.legend()
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_image_grid(path, images, titles=None, columns: int = 8, title: str | None = None,
                    cmap: str = "gray") -> pathlib.Path:
    """Write a PNG grid of images.

    Args:
        images: an array (or Tensor) of shape (N, H, W), (N, 1, H, W) or (N, 3, H, W); grey images
            are drawn with ``cmap`` on the range [0, 1] (scaled per image when outside it), colour
            images scaled per image.
        titles: one short string per image (e.g. "7 (true 1)"), or None.
    """
    images = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, H, W)
    elif images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)  # (N, H, W, 3)
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    height = 1.2 * rows + (0.4 if title else 0) + (0.2 * rows if titles is not None else 0)
    figure = new_figure(1.2 * columns, height)
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.axis("off")
        if index >= len(images):
            continue
        image = images[index]
        if image.ndim == 2:
            in_unit_range = image.min() >= 0.0 and image.max() <= 1.0
            low, high = (0.0, 1.0) if in_unit_range else (image.min(), image.max())
            axes.imshow(image, cmap=cmap, vmin=low, vmax=high)
        else:
            low, high = image.min(), image.max()
            axes.imshow((image - low) / (high - low + 1e-8))
        if titles is not None:
            axes.set_title(str(titles[index]), fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_confusion_matrix(path, matrix, class_names=None,
                          title: str = "confusion matrix") -> pathlib.Path:
    """Write a PNG of a confusion matrix (rows: true class, columns: predicted), counts in cells."""
    matrix = np.asarray(matrix)
    classes = len(matrix)
    names = list(class_names) if class_names is not None else [str(i) for i in range(classes)]
    figure = new_figure(max(3.5, 1.0 + 0.5 * classes), max(3.0, 0.6 + 0.5 * classes))  # a title fits
    axes = figure.subplots()
    # Colour by the row's share, so a rare class's errors are as visible as a common one's.
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(classes):
        for column in range(classes):
            color = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center",
                      fontsize=7, color=color)
    axes.set_xticks(range(classes), names, rotation=45 if max(map(len, names)) > 2 else 0)
    axes.set_yticks(range(classes), names)
    axes.set(title=title, xlabel="predicted", ylabel="true")
    return save_figure(figure, path)
