"""Recognise spoken digits ("zero" ... "nine") with a 1-D convolutional network on spectrograms.

What it shows: audio as a sequence of spectra. Each one-second clip (8,000 samples at 8 kHz) is cut
into overlapping 32 ms frames; the log-magnitude of each frame's Fourier transform gives a
(129 frequencies, 61 frames) log-spectrogram, computed here in a few lines of NumPy. Frequencies
become channels, so ``nn.Conv1d`` slides along time: stacked convolutions with batch
normalisation, ReLU and ``nn.MaxPool1d``, then an average over time (``nn.AdaptiveAvgPool1d``),
dropout and a linear classifier. Trained with AdamW (weight decay), early stopping and the best
epoch kept (``minidl.train.fit``).

Data: 4,040 clips synthesised by espeak-ng with 101 voice variants, 2 speeds and 2 pitches
(``minidl.datasets.load_spoken_digits``). The split is by voice: 20 voices are never heard in
training and give the test accuracy, 10 others the validation set.

Run::

    python examples/audio_cnn.py            # accuracy on held-out voices (target >= 90%)
    python examples/audio_cnn.py --quick    # a few steps: checks that it runs

Writes ``curves.png`` (loss and accuracy per epoch), ``confusion.png`` (held-out voices) and
``spectrograms.png`` (one example of each digit) into ``--out``.
"""
from __future__ import annotations

import numpy as np
from _common import (
    Stopwatch,
    classification_report,
    make_parser,
    plot_confusion_matrix,
    plot_image_grid,
    prepare,
)

from minidl import nn
from minidl.datasets import load_spoken_digits
from minidl.datasets.speech import WORDS
from minidl.metrics import confusion_matrix
from minidl.optim import AdamW
from minidl.serialization import load
from minidl.train import EarlyStopping, ModelCheckpoint, fit, predict

FRAME, HOP = 256, 128  # 32 ms windows every 16 ms at 8 kHz


def log_spectrogram(audio: np.ndarray) -> np.ndarray:
    """(N, samples) waveforms -> (N, FRAME // 2 + 1, frames) log-magnitude spectrograms."""
    frames = 1 + (audio.shape[1] - FRAME) // HOP
    starts = HOP * np.arange(frames)  # (F,)
    windows = audio[:, starts[:, None] + np.arange(FRAME)]  # (N, F, FRAME): overlapping frames
    spectra = np.fft.rfft(windows * np.hanning(FRAME), axis=-1)  # (N, F, FRAME // 2 + 1)
    return np.log(np.abs(spectra) + 1e-3).transpose(0, 2, 1).astype(np.float32)  # (N, K, F)


def build_model(frequencies: int, dropout: float = 0.3) -> nn.Module:
    """(B, K frequencies, F frames) -> (B, 10) logits: convolutions along time."""
    def block(inputs, outputs, width):
        return [nn.Conv1d(inputs, outputs, width, padding=width // 2), nn.BatchNorm1d(outputs),
                nn.ReLU()]

    return nn.Sequential(
        *block(frequencies, 64, 5), nn.MaxPool1d(2),  # (B, 64, F / 2)
        *block(64, 96, 5), nn.MaxPool1d(2),  # (B, 96, F / 4)
        *block(96, 128, 3),  # (B, 128, F / 4)
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),  # (B, 128): averaged over time
        nn.Dropout(dropout), nn.Linear(128, 10),
    )


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="audio_cnn", epochs=20, lr=2e-3, batch_size=64)
    args = parser.parse_args(argv)
    out = prepare(args)

    # (4040, 8000), (4040,), (4040,) voice ids; a quick run synthesises only 8 voices
    audio, labels, voices = load_spoken_digits(voices=8 if args.quick else None)
    if args.quick:
        args.epochs = 3
    features = log_spectrogram(audio)  # (N, 129, 61)
    order = np.random.default_rng(args.seed).permutation(np.unique(voices))
    n_test, n_val = (2, 1) if args.quick else (20, 10)
    test = np.isin(voices, order[:n_test])
    val = np.isin(voices, order[n_test:n_test + n_val])
    train = ~(test | val)
    # standardise each frequency with the training set's statistics
    mean = features[train].mean(axis=(0, 2), keepdims=True)  # (1, K, 1)
    std = features[train].std(axis=(0, 2), keepdims=True) + 1e-5  # (1, K, 1)
    features = (features - mean) / std
    print(f"spoken digits: {train.sum()} training clips, {val.sum()} validation, {test.sum()} "
          f"test from {n_test} held-out voices; spectrograms of shape {features.shape[1:]}")

    model = build_model(features.shape[1]).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    best = out / "best.safetensors"
    callbacks = [EarlyStopping(monitor="val_loss", patience=4),
                 ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True)]
    clock = Stopwatch()
    history = fit(model, (features[train], labels[train]), nn.CrossEntropyLoss(), optimizer,
                  epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=(features[val], labels[val]), metrics=["accuracy"],
                  callbacks=callbacks, device=args.device)
    model.load_state_dict(load(str(best))["model"])  # the epoch with the lowest validation loss

    y_true = labels[test]
    y_pred = predict(model, features[test], batch_size=256).numpy().argmax(axis=1)
    report = classification_report(y_true, y_pred, num_classes=10)
    print(f"accuracy on {n_test} held-out voices: {report['accuracy']:.4f} (macro F1 "
          f"{report['f1_score']:.4f}) after {len(history['loss'])} epochs in {clock():.0f}s")
    history.plot(out / "curves.png")
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_true, y_pred, 10),
                          class_names=WORDS, title="spoken digits: held-out voices")
    examples = [np.flatnonzero(labels == digit)[0] for digit in range(10)]
    shown = features[examples]  # (10, K, F), standardised
    plot_image_grid(out / "spectrograms.png", (shown[:, ::-1] + 3) / 6, titles=WORDS, columns=5,
                    title="log-spectrograms (low frequencies at the bottom)", cmap="magma")
    print(f"wrote {out / 'curves.png'}, {out / 'confusion.png'} and {out / 'spectrograms.png'}")
    return {"losses": history["loss"], "test_accuracy": report["accuracy"], **report}


if __name__ == "__main__":
    main()
