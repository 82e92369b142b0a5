"""A 3-D CNN that watches a short clip of a bouncing digit and says which digit it is.

What it shows: video as a 5-D tensor (N, C, T, H, W); ``Conv3d`` kernels that slide over time as
well as space, ``MaxPool3d`` that shrinks both, ``BatchNorm3d``; Moving-MNIST clips generated on
the fly from MNIST digits (training clips from training digits, test clips from test digits, so no
test digit was seen in training); ``minidl.train.fit`` with AdamW and a warm-up-then-cosine schedule
(``SequentialLR`` of ``LinearLR`` and ``CosineAnnealingLR``, stepped per epoch). Draws a clip as a
film strip, the learning curves and the confusion matrix.

Run::

    python examples/video_cnn3d.py           # 3,000 clips of 8 frames, 40x40; target >= 90%
    python examples/video_cnn3d.py --quick   # a few steps (the test suite)
"""
from __future__ import annotations

from minidl import nn
from minidl.datasets import load_mnist, make_moving_digits
from minidl.metrics import confusion_matrix
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
from minidl.train import fit, predict

from _common import (Stopwatch, classification_report, make_parser, plot_confusion_matrix,
                     plot_image_grid, prepare)


def build_cnn3d(dropout: float = 0.3) -> nn.Module:
    """(N, 1, T, S, S) clips -> (N, 10) logits."""
    return nn.Sequential(
        nn.Conv3d(1, 8, kernel_size=3, padding=1), nn.BatchNorm3d(8), nn.ReLU(),  # (N, 8, T, S, S)
        nn.MaxPool3d(kernel_size=2),  # (N, 8, T/2, S/2, S/2)
        nn.Conv3d(8, 16, kernel_size=3, padding=1), nn.BatchNorm3d(16), nn.ReLU(),
        nn.MaxPool3d(kernel_size=(1, 2, 2)),  # (N, 16, T/2, S/4, S/4): pool space, keep time
        nn.Conv3d(16, 32, kernel_size=3, padding=1), nn.BatchNorm3d(32), nn.ReLU(),
        nn.AdaptiveAvgPool3d((1, 4, 4)),  # (N, 32, 1, 4, 4): average over the remaining time
        nn.Flatten(),  # (N, 512)
        nn.Dropout(dropout),
        nn.Linear(32 * 4 * 4, 10),  # (N, 10)
    )


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="video_cnn3d", epochs=8, lr=3e-3, batch_size=32)
    parser.add_argument("--clips", type=int, default=3000, help="training clips")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=40, help="frame side in pixels (>= 28)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.clips = 2, 96
    out = prepare(args)

    digits, labels = load_mnist(train=True)
    test_digits, test_labels = load_mnist(train=False)
    x_train, y_train = make_moving_digits(digits, labels, args.clips, args.frames, args.size,
                                          seed=args.seed)  # (N, 1, T, S, S), (N,)
    x_test, y_test = make_moving_digits(test_digits, test_labels, max(args.clips // 4, 32),
                                        args.frames, args.size, seed=args.seed + 1)
    split = len(x_train) - len(x_train) // 10  # the last tenth validates
    x_train, x_val = x_train[:split], x_train[split:]
    y_train, y_val = y_train[:split], y_train[split:]
    print(f"clips of {args.frames} frames, {args.size}x{args.size}: {len(x_train)} training, "
          f"{len(x_val)} validation, {len(x_test)} test")

    model = build_cnn3d().to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    warmup = 1
    scheduler = SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
                                         CosineAnnealingLR(optimizer, T_max=args.epochs - warmup)],
                             milestones=[warmup])
    clock = Stopwatch()
    history = fit(model, (x_train, y_train), nn.CrossEntropyLoss(), optimizer, epochs=args.epochs,
                  batch_size=args.batch_size, validation_data=(x_val, y_val),
                  metrics=["accuracy"], scheduler=scheduler, device=args.device)

    predicted = predict(model, x_test, batch_size=128).numpy().argmax(axis=1)  # (N,)
    report = classification_report(y_test, predicted, num_classes=10)
    print(f"test accuracy {report['accuracy']:.4f}  macro F1 {report['f1_score']:.4f} on "
          f"{len(y_test)} clips ({clock():.0f}s)")

    history.plot(out / "curves.png")
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_test, predicted, 10),
                          title="moving digits, test clips")
    strips = x_test[:3, 0].reshape(-1, args.size, args.size)  # (3·T, S, S): three clips in a row
    titles = [f"t={t}" if t else f"{predicted[i]} (true {y_test[i]})" for i in range(3)
              for t in range(args.frames)]
    plot_image_grid(out / "clips.png", strips, titles=titles, columns=args.frames,
                    title="three test clips, one per row (first frame: predicted (true) digit)")
    print(f"pictures in {out}/")
    return {"losses": history["loss"], "test_accuracy": report["accuracy"], **report}


if __name__ == "__main__":
    main()
