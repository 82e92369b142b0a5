"""Sentiment of short movie reviews with a convolutional network over word embeddings (Kim, 2014).

What it shows: text as a 1-D signal. Each word id becomes a learned vector (``nn.Embedding``); the
sentence is then a (channels = embedding dims, length = words) array, so ``nn.Conv1d`` filters 3,
4 and 5 words wide act as learned n-gram detectors, and a max over the whole length
(``nn.MaxPool1d``) keeps each filter's strongest match wherever it occurs. Dropout before the
classifier, AdamW's weight decay, early stopping on the validation loss and keeping the best
epoch's weights (``minidl.train.fit`` with ``EarlyStopping`` and ``ModelCheckpoint``) hold off
overfitting on 10,000 training snippets.

Data: 12,808 Rotten Tomatoes snippets labelled fresh (58%) or rotten, split 80/10/10.

Run::

    python examples/text_cnn.py            # test accuracy, precision/recall/F1 (target >= 70%)
    python examples/text_cnn.py --quick    # a few steps: checks that it runs

Writes ``curves.png`` (loss and accuracy per epoch) and ``confusion.png`` (test set) into ``--out``.
"""
from __future__ import annotations

import numpy as np
from _common import Stopwatch, make_parser, plot_confusion_matrix, prepare

from minidl import metrics, nn
from minidl.datasets import WordVocabulary, load_movie_reviews
from minidl.ops import cat
from minidl.optim import AdamW
from minidl.serialization import load
from minidl.train import EarlyStopping, ModelCheckpoint, fit, predict

LENGTH = 40  # words kept per review (95% of the snippets are shorter), padded with id 0


class TextCNN(nn.Module):
    """(B, T) word ids -> (B, 2) logits: embed, n-gram convolutions, max over time, linear."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, filters: int = 64,
                 widths=(3, 4, 5), dropout: float = 0.5):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=WordVocabulary.PAD)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, width) for width in widths)
        self.pools = nn.ModuleList(nn.MaxPool1d(LENGTH - width + 1) for width in widths)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(widths), 2)

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)  # (B, T, E) -> (B, E, T): embedding dims as channels
        features = [pool(conv(x).relu()) for conv, pool in zip(self.convs, self.pools)]
        features = cat(features, dim=1)  # 3 x (B, F, 1) -> (B, 3F, 1): each filter's best match
        return self.head(self.dropout(features.reshape(features.shape[0], -1)))  # (B, 2)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="text_cnn", epochs=10, lr=2e-3, batch_size=64)
    args = parser.parse_args(argv)
    out = prepare(args)

    texts, labels = load_movie_reviews()
    order = np.random.default_rng(args.seed).permutation(len(labels))
    if args.quick:
        order, args.epochs = order[:640], 3
    n_train, n_val = int(0.8 * len(order)), int(0.1 * len(order))
    train, val, test = np.split(order, [n_train, n_train + n_val])
    vocab = WordVocabulary([texts[i] for i in train], max_size=10000)  # from training text only
    ids = vocab.encode(texts, LENGTH)  # (N, T) int64 word ids, 0 = padding, 1 = unknown word
    print(f"movie reviews: {len(train)} training, {len(val)} validation, {len(test)} test; "
          f"vocabulary of {len(vocab)} words; {labels[test].mean():.0%} of the test set is fresh")

    model = TextCNN(len(vocab)).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    best = out / "best.safetensors"
    callbacks = [EarlyStopping(monitor="val_loss", patience=2),
                 ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True)]
    clock = Stopwatch()
    history = fit(model, (ids[train], labels[train]), nn.CrossEntropyLoss(), optimizer,
                  epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=(ids[val], labels[val]), metrics=["accuracy"],
                  callbacks=callbacks, device=args.device)
    model.load_state_dict(load(str(best))["model"])  # the epoch with the lowest validation loss

    y_true = labels[test]
    y_pred = predict(model, ids[test], batch_size=256).numpy().argmax(axis=1)
    report = {name: getattr(metrics, name)(y_true, y_pred)  # "fresh" is the positive class
              for name in ("accuracy", "precision", "recall", "f1_score")}
    print(f"test accuracy {report['accuracy']:.4f}, fresh precision {report['precision']:.3f} "
          f"recall {report['recall']:.3f} F1 {report['f1_score']:.3f} (majority class: "
          f"{max(y_true.mean(), 1 - y_true.mean()):.4f}) after {len(history['loss'])} epochs "
          f"in {clock():.0f}s")
    history.plot(out / "curves.png")
    plot_confusion_matrix(out / "confusion.png", metrics.confusion_matrix(y_true, y_pred, 2),
                          class_names=["rotten", "fresh"], title="text CNN: test reviews")
    print(f"wrote {out / 'curves.png'} and {out / 'confusion.png'}")
    return {"losses": history["loss"], "test_accuracy": report["accuracy"], **report}


if __name__ == "__main__":
    main()
