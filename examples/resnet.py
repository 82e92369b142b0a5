"""A small residual network (ResNet) on Fashion-MNIST, against the plain CNN of mnist_cnn.py.

What it shows: the residual block of He et al. (2015). A block computes

    y = ReLU(F(x) + shortcut(x)),    F = conv3x3 -> BatchNorm -> ReLU -> conv3x3 -> BatchNorm

where the shortcut is x itself, or a strided 1x1 convolution and BatchNorm where the block halves
the image or widens the channels. Because the gradient reaches x through the shortcut unchanged,
deep stacks of blocks train as easily as shallow ones. The network: a 3x3 stem, three stages of
blocks at 16, 32 and 64 channels on 28x28, 14x14 and 7x7 images, global average pooling and one
linear layer (PyTorch's ``torchvision.models.resnet`` names: ``conv1 bn1 layer1..3 avgpool fc``).
The baseline is ``mnist_cnn.build_cnn``, trained with the same recipe (AdamW, one-cycle learning
rate, gradient clipping), on the same images in the same order, for the same number of steps.

Run::

    python examples/resnet.py                                # 3 epochs on 10,000 training images
    python examples/resnet.py --train-size 60000 --epochs 5  # the whole training set (slow on CPU)
    python examples/resnet.py --blocks 2                     # 2 blocks a stage: ResNet-14
    python examples/resnet.py --quick                        # a few steps (the test suite)

Both models are tested on the 10,000 test images (or ``--test-size``) after every epoch.
Writes ``curves.png`` (training loss per step, test accuracy per epoch, both models),
``confusion.png`` and ``mistakes.png`` (the ResNet's test predictions) into ``--out``.
Data: Fashion-MNIST from ``apt-get install dataset-fashion-mnist``; see examples/README.md.
"""
from __future__ import annotations

import numpy as np
from _common import (Stopwatch, batches, make_parser, new_figure, plot_confusion_matrix,
                     plot_image_grid, prepare, save_figure, smooth, train_step)
from mnist_cnn import FASHION_CLASSES, build_cnn, load_data

import minidl
from minidl import metrics, nn
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import OneCycleLR
from minidl.train import predict


class BasicBlock(nn.Module):
    """(N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride): two 3x3 convolutions
    and a shortcut, identity or (when the shape changes) a strided 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        # No bias before BatchNorm: its mean subtraction would cancel it.
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)  # (N, C_out, H', W')
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, H', W')
        out = self.bn2(self.conv2(out))  # (N, C_out, H', W')
        return self.relu(out + identity)


class ResNet(nn.Module):
    """(N, 1, 28, 28) images -> (N, num_classes) logits: stem, three stages, pooling, linear."""

    def __init__(self, blocks_per_stage: int = 1, widths=(16, 32, 64), num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.layer1 = make_stage(widths[0], widths[0], blocks_per_stage, stride=1)
        self.layer2 = make_stage(widths[0], widths[1], blocks_per_stage, stride=2)
        self.layer3 = make_stage(widths[1], widths[2], blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, 28, 28)
        x = self.layer1(x)  # (N, 16, 28, 28)
        x = self.layer2(x)  # (N, 32, 14, 14)
        x = self.layer3(x)  # (N, 64, 7, 7)
        x = self.avgpool(x).flatten(1)  # (N, 64, 1, 1) -> (N, 64)
        return self.fc(x)  # (N, 10)


def make_stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` basic blocks: the first changes the shape (stride, channels), the rest keep it."""
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride),
                         *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)))


def train(name: str, model, x_train, y_train, x_test, y_test, args) -> dict:
    """mnist_cnn.py's recipe for ``args.epochs`` epochs; the test accuracy after each epoch.

    Returns the loss of every step, the test accuracy of every epoch, the last test predictions
    and the seconds spent training and testing.
    """
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters")
    model = model.to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=steps_per_epoch, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)  # the same batches, in the same order, for each model
    losses, accuracies, clock = [], [], Stopwatch()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for index in batches(len(x_train), args.batch_size, rng):
            x = minidl.tensor(x_train[index], device=args.device)  # (B, 1, 28, 28)
            y = minidl.tensor(y_train[index], device=args.device)  # (B,)
            losses.append(train_step(model, loss_fn, optimizer, scheduler, x, y))
        logits = predict(model, x_test, batch_size=500, device=args.device)  # (N, 10), eval mode
        predicted = logits.numpy().argmax(axis=1)  # (N,)
        accuracies.append(metrics.accuracy(y_test, predicted))
        print(f"{name} epoch {epoch}/{args.epochs}: training loss "
              f"{np.mean(losses[-steps_per_epoch:]):.4f}, test accuracy {accuracies[-1]:.4f} "
              f"({clock():.0f}s)")
    return {"losses": losses, "test_accuracies": accuracies, "predicted": predicted,
            "seconds": clock()}


def plot_curves(path, runs: dict) -> None:
    """Two panels: each model's training loss per step (smoothed) and test accuracy per epoch."""
    figure = new_figure(10, 3.5)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, (name, run) in enumerate(runs.items()):
        color, losses = f"C{index}", run["losses"]
        steps = np.arange(1, len(losses) + 1)
        if len(losses) > 50:  # noisy: faint as it is, bold smoothed
            loss_axes.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
            losses = smooth(losses, len(losses) // 25)
        loss_axes.plot(steps, losses, color=color, label=name)
        epochs = np.arange(1, len(run["test_accuracies"]) + 1)
        accuracy_axes.plot(epochs, run["test_accuracies"], color=color, marker="o", label=name)
    loss_axes.set(title="training loss per batch", xlabel="step", ylabel="cross-entropy")
    accuracy_axes.set(title="test accuracy", xlabel="epoch", ylabel="accuracy",
                      xticks=epochs)
    for axes in (loss_axes, accuracy_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    save_figure(figure, path)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="resnet", epochs=3, lr=3e-3, batch_size=128)
    parser.add_argument("--train-size", type=int, default=10_000,
                        help="use the first N training images (default: 10,000 of 60,000)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="test on the first N test images (default: all 10,000)")
    parser.add_argument("--blocks", type=int, default=1, help="basic blocks per stage (default 1: "
                        "ResNet-8, 8 weighted layers)")
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size, args.batch_size, args.test_size = 2, 192, 32, 100
    out = prepare(args)

    x_train, y_train, x_test, y_test = load_data("fashion", args.train_size, args.test_size)
    print(f"fashion-mnist: {len(x_train)} training and {len(x_test)} test images, "
          f"{args.epochs} epochs of {args.batch_size}")
    resnet_name = f"ResNet-{6 * args.blocks + 2}"
    resnet = train(resnet_name, ResNet(args.blocks), x_train, y_train, x_test, y_test, args)
    cnn = train("CNN (mnist_cnn.py)", build_cnn(), x_train, y_train, x_test, y_test, args)
    for name, run in ((resnet_name, resnet), ("CNN (mnist_cnn.py)", cnn)):
        print(f"{name}: test accuracy {run['test_accuracies'][-1]:.4f} in {run['seconds']:.0f}s")

    predicted = resnet["predicted"]
    plot_curves(out / "curves.png", {resnet_name: resnet, "CNN (mnist_cnn.py)": cnn})
    plot_confusion_matrix(out / "confusion.png", metrics.confusion_matrix(y_test, predicted, 10),
                          FASHION_CLASSES, title=f"{resnet_name}: Fashion-MNIST test set")
    wrong = np.flatnonzero(predicted != y_test)[:32]  # (K,) indices of misclassified images
    if len(wrong):
        titles = [f"{FASHION_CLASSES[predicted[i]]} ({FASHION_CLASSES[y_test[i]]})" for i in wrong]
        plot_image_grid(out / "mistakes.png", x_test[wrong], titles=titles, cmap="gray_r",
                        title=f"{resnet_name} misclassified: predicted (true)")
    print(f"pictures in {out}/")
    return {"losses": resnet["losses"], "test_accuracy": resnet["test_accuracies"][-1],
            "resnet": resnet, "cnn": cnn}


if __name__ == "__main__":
    main()
