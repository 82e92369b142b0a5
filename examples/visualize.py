"""Look inside a network: its autograd graph, training curve, filters, activations and saliency.

What it shows, on a small CNN trained briefly on MNIST:

* ``graph.dot``: the autograd graph of one loss, found by walking ``loss.grad_fn`` and each node's
  ``_inputs`` (the tensors it was computed from) back to the parameters; rendered to
  ``graph.svg`` when graphviz's ``dot`` program is installed (``apt-get install graphviz``);
* ``curves.png``: the training loss per batch;
* ``filters.png``: the first convolution's 5x5 kernels (red positive, blue negative): even
  after brief training, many respond to edges and strokes at one orientation;
* ``activations.png``: what those filters see in one test digit, captured with
  ``register_forward_hook`` on the first ReLU;
* ``saliency.png``: which pixels the predicted class's score is most sensitive to,
  |d score / d input|, by calling ``backward`` on the score with an input that requires grad.

Run::

    python examples/visualize.py           # trains 3 epochs on 12,000 digits, writes the pictures
    python examples/visualize.py --quick   # a few steps (the test suite)
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np

import minidl
from minidl import nn
from minidl.datasets import load_mnist
from minidl.optim import Adam

from _common import (Stopwatch, batches, make_parser, new_figure, plot_image_grid, plot_losses,
                     prepare, save_figure)


def build_cnn() -> nn.Sequential:
    """(N, 1, 28, 28) -> (N, 10) logits; 5x5 kernels first, so the filters are worth looking at."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5, padding=2), nn.ReLU(),  # (N, 16, 28, 28)
        nn.MaxPool2d(2),  # (N, 16, 14, 14)
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),  # (N, 32, 14, 14)
        nn.MaxPool2d(2),  # (N, 32, 7, 7)
        nn.Flatten(),  # (N, 1568)
        nn.Linear(32 * 7 * 7, 10),  # (N, 10)
    )


# ----------------------------------------------------------------------------- the autograd graph


def autograd_dot(output: minidl.Tensor, names: dict) -> str:
    """Graphviz DOT text of the graph that computed ``output``.

    Args:
        output: a tensor with a ``grad_fn``.
        names: ``id(tensor) -> name`` for the leaves to label (e.g. the model's parameters).

    Ops are boxes (their backward's name, e.g. ``ConvNdBackward``), leaves are ellipses with name
    and shape; an edge runs from each input to the op that used it, as data flows forward. The walk
    is iterative, like ``backward`` itself, so deep graphs cannot hit the recursion limit.
    """
    lines = ["digraph autograd {", '  rankdir="TB"; node [fontname="Helvetica", fontsize=10];']
    seen, stack = set(), [output.grad_fn]
    lines.append(f'  out [label="output\\n{tuple(output.shape)}", shape=doubleoctagon];')
    lines.append(f"  n{id(output.grad_fn)} -> out;")
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        lines.append(f'  n{id(node)} [label="{node.name}", shape=box, style=filled, '
                     'fillcolor="#dbe8f6"];')
        for parent in node._inputs:
            if parent is None:
                continue
            if parent.grad_fn is not None:  # an intermediate result: recurse into its op
                lines.append(f"  n{id(parent.grad_fn)} -> n{id(node)};")
                stack.append(parent.grad_fn)
            elif id(parent) not in seen:  # a leaf: a parameter or an input
                seen.add(id(parent))
                label = names.get(id(parent), "input" if not parent.requires_grad else "leaf")
                color = "#fbe3c4" if parent.requires_grad else "#eeeeee"
                lines.append(f'  t{id(parent)} [label="{label}\\n{tuple(parent.shape)}", '
                             f'style=filled, fillcolor="{color}"];')
                lines.append(f"  t{id(parent)} -> n{id(node)};")
            else:
                lines.append(f"  t{id(parent)} -> n{id(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(out, model, x, y) -> list:
    """Write graph.dot (and graph.svg if graphviz is installed); return the paths written."""
    loss = nn.CrossEntropyLoss()(model(x), y)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    dot_path = out / "graph.dot"
    dot_path.write_text(autograd_dot(loss, names))
    written = [dot_path]
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", str(dot_path), "-o", str(out / "graph.svg")], check=True)
        written.append(out / "graph.svg")
    return written


# ----------------------------------------------------------------------------- looking inside


def capture_activations(model: nn.Sequential, layer: nn.Module, x) -> np.ndarray:
    """The output of ``layer`` when ``model`` runs on ``x``, caught by a forward hook."""
    captured = {}
    handle = layer.register_forward_hook(lambda module, inputs, output:
                                         captured.update(output=output.numpy()))
    with minidl.no_grad():
        model(x)
    handle.remove()
    return captured["output"]


def saliency(model: nn.Module, image: np.ndarray, device: str) -> tuple:
    """|d score / d pixel| for the predicted class of a (1, 28, 28) image: (map (28, 28), class)."""
    x = minidl.tensor(image[None], device=device).requires_grad_()  # (1, 1, 28, 28), a leaf
    logits = model(x)  # (1, 10)
    predicted = int(logits.numpy().argmax())
    logits[0, predicted].backward()  # the score of the predicted class, a scalar
    return np.abs(x.grad.numpy()[0, 0]), predicted  # (28, 28)


def plot_saliency(path, image: np.ndarray, heat: np.ndarray, predicted: int) -> None:
    figure = new_figure(7.5, 2.8)
    left, middle, right = figure.subplots(1, 3)
    left.imshow(image, cmap="gray_r")
    left.set_title(f"input (predicted {predicted})")
    middle.imshow(heat, cmap="hot")
    middle.set_title("|d score / d pixel|")
    right.imshow(image, cmap="gray_r")
    right.imshow(heat, cmap="hot", alpha=0.55)
    right.set_title("overlay")
    for axes in (left, middle, right):
        axes.axis("off")
    save_figure(figure, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="visualize", epochs=3, lr=2e-3, batch_size=64)
    parser.add_argument("--train-size", type=int, default=12000)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size = 1, 640
    out = prepare(args)

    x_train, y_train = load_mnist(train=True)
    x_train, y_train = x_train[:args.train_size], y_train[:args.train_size]
    x_test, y_test = load_mnist(train=False)
    model = build_cnn().to(args.device)
    optimizer = Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)

    def tensors(index):
        return (minidl.tensor(x_train[index], device=args.device),  # (B, 1, 28, 28)
                minidl.tensor(y_train[index], device=args.device))  # (B,)

    written = write_graph(out, model, *tensors(np.arange(2)))  # the graph of a 2-image batch
    losses, clock = [], Stopwatch()
    for _ in range(args.epochs):
        for index in batches(len(x_train), args.batch_size, rng):
            x, y = tensors(index)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    with minidl.no_grad():
        logits = model(minidl.tensor(x_test[:1000], device=args.device))  # (1000, 10)
    accuracy = float((logits.numpy().argmax(axis=1) == y_test[:1000]).mean())
    print(f"trained {len(losses)} steps in {clock():.0f}s; accuracy {accuracy:.4f} on 1,000 test "
          "digits")

    written.append(plot_losses(out / "curves.png", losses, title="training loss per batch"))
    filters = model[0].weight.numpy()[:, 0]  # (16, 5, 5)
    limit = np.abs(filters).max()
    written.append(plot_image_grid(out / "filters.png", filters / (2 * limit) + 0.5, columns=8,
                                   title="first-layer 5x5 filters", cmap="RdBu_r"))
    digit = minidl.tensor(x_test[:1], device=args.device)  # (1, 1, 28, 28)
    maps = capture_activations(model, model[1], digit)[0]  # (16, 28, 28)
    written.append(plot_image_grid(out / "activations.png", maps / (maps.max() + 1e-8), columns=8,
                                   title="first ReLU's 16 feature maps of one test digit",
                                   cmap="viridis"))
    heat, predicted = saliency(model, x_test[0], args.device)
    plot_saliency(out / "saliency.png", x_test[0, 0], heat, predicted)
    written.append(out / "saliency.png")
    print("wrote " + ", ".join(path.name for path in written) + f" in {out}/")
    return {"losses": losses, "test_accuracy": accuracy, "files": [str(p) for p in written]}


if __name__ == "__main__":
    main()
