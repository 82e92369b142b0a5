"""Sentiment of movie reviews with the pretrained all-MiniLM-L6-v2, fine-tuned end to end in minidl.

What it shows: transfer learning. The encoder of :mod:`bert` (the real pretrained weights) turns a
review into token vectors; their mean over the real tokens is the review's vector h, and a linear
head gives the logits W h + b. Every weight is then trained on the labels with AdamW,

    lr(step) = lr · min(step / warm-up, (total - step) / (total - warm-up))   # linear up, then down

and each step's gradients scaled to a total 2-norm of at most 1 (``clip_grad_norm_``), the usual
recipe for fine-tuning BERT (Devlin et al., 2018). Against it: logistic regression (scikit-learn)
on the frozen pretrained embeddings, and text_cnn.py's 73.9%, with the same data split.

Data: 12,808 Rotten Tomatoes snippets labelled fresh (58%) or rotten, split 80/10/10 as text_cnn.py.

Run::

    python examples/bert_finetune.py            # test accuracy and F1, fine-tuned and frozen
    python examples/bert_finetune.py --quick    # a few steps on a little data: checks that it runs

Writes ``curves.png`` (training loss per step) and ``confusion.png`` (test set) into ``--out``.
Needs ``pip install "minidl[bert]"`` and scikit-learn.
"""
from __future__ import annotations

import numpy as np
from _common import Stopwatch, batches, make_parser, plot_confusion_matrix, plot_losses, prepare
from bert import Tokenizer, load_pretrained, mean_pool

import minidl
from minidl import metrics, nn
from minidl.datasets import load_movie_reviews
from minidl.nn.utils import clip_grad_norm_
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import LambdaLR

MAX_LENGTH = 64  # word pieces kept per review, [CLS] and [SEP] included


class BertClassifier(nn.Module):
    """(B, T) ids and mask -> (B, 2) logits: pretrained encoder, mean pooling, dropout, linear."""

    def __init__(self, encoder, num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        hidden, _ = self.encoder(input_ids, attention_mask)  # (B, T, C)
        return self.head(self.dropout(mean_pool(hidden, attention_mask)))  # (B, C) -> (B, 2)


def warmup_then_decay(warmup: int, total: int):
    """The factor of the learning rate at ``step``: 0 -> 1 over ``warmup`` steps, then -> 0."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def predict_logits(model, tokenize, texts, batch_size: int = 64) -> np.ndarray:
    """(N,) texts -> (N, 2) logits, in eval mode and without gradients."""
    model.eval()
    with minidl.no_grad():
        return np.concatenate([model(*tokenize([texts[i] for i in rows])).numpy()
                               for rows in batches(len(texts), batch_size)])


def frozen_embeddings(encoder, tokenize, texts, batch_size: int = 64) -> np.ndarray:
    """(N,) texts -> (N, C) mean-pooled token vectors of the pretrained, untouched encoder."""
    encoder.eval()
    with minidl.no_grad():
        return np.concatenate([mean_pool(encoder(ids, mask)[0], mask).numpy()
                               for ids, mask in (tokenize([texts[i] for i in rows])
                                                 for rows in batches(len(texts), batch_size))])


def load_encoder(quick: bool):
    """The pretrained encoder; in --quick mode only its first layer of 6 (a fast check)."""
    encoder = load_pretrained()
    if quick:
        encoder.layers = encoder.layers[:1]
    return encoder


def frozen_baseline(encoder, tokenize, texts, labels, train, test) -> dict:
    """Logistic regression (scikit-learn) on the pretrained embeddings: accuracy and F1 on test."""
    from sklearn.linear_model import LogisticRegression

    features = frozen_embeddings(encoder, tokenize, [texts[i] for i in np.r_[train, test]])
    train_x, test_x = features[:len(train)], features[len(train):]  # (N_train, C), (N_test, C)
    classifier = LogisticRegression(max_iter=2000).fit(train_x, labels[train])
    y_pred = classifier.predict(test_x)
    return {"accuracy": metrics.accuracy(labels[test], y_pred),
            "f1_score": metrics.f1_score(labels[test], y_pred)}


def fine_tune(model, tokenize, texts, labels, train, args) -> list:
    """AdamW with linear warm-up and decay and gradient clipping; returns the loss of every step."""
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = args.epochs * -(-len(train) // args.batch_size)
    scheduler = LambdaLR(optimizer, warmup_then_decay(max(1, total // 10), total))
    loss_fn, rng = nn.CrossEntropyLoss(), np.random.default_rng(args.seed)
    losses, clock = [], Stopwatch()
    for epoch in range(args.epochs):
        model.train()
        for rows in batches(len(train), args.batch_size, rng):
            chosen = train[rows]
            logits = model(*tokenize([texts[i] for i in chosen]))  # (B, 2)
            loss = loss_fn(logits, minidl.tensor(labels[chosen]))
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if len(losses) % 20 == 0:
                print(f"epoch {epoch + 1} step {len(losses)}/{total}: loss "
                      f"{np.mean(losses[-20:]):.4f} ({clock():.0f}s)")
    return losses


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="bert_finetune", epochs=1, lr=5e-5, batch_size=32)
    args = parser.parse_args(argv)
    if args.device != "cpu":
        parser.error("bert_finetune runs on the CPU only (the tokenizer's arrays are NumPy)")
    out = prepare(args)

    texts, labels = load_movie_reviews()
    order = np.random.default_rng(args.seed).permutation(len(labels))  # text_cnn.py's split
    n_train, n_val = int(0.8 * len(order)), int(0.1 * len(order))
    train, _, test = np.split(order, [n_train, n_train + n_val])
    if args.quick:
        train, test, args.epochs, args.batch_size, args.lr = train[:48], test[:32], 2, 16, 2e-4
    tokenize = Tokenizer(max_length=16 if args.quick else MAX_LENGTH)
    print(f"movie reviews: {len(train)} training, {len(test)} test")

    clock = Stopwatch()
    encoder = load_encoder(args.quick)  # measured frozen first, then fine-tuned
    frozen = frozen_baseline(encoder, tokenize, texts, labels, train, test)
    print(f"frozen encoder + logistic regression: test accuracy {frozen['accuracy']:.4f}, "
          f"F1 {frozen['f1_score']:.3f} ({clock():.0f}s)")

    model = BertClassifier(encoder)
    losses = fine_tune(model, tokenize, texts, labels, train, args)
    y_true = labels[test]
    y_pred = predict_logits(model, tokenize, [texts[i] for i in test]).argmax(axis=1)
    report = {"accuracy": metrics.accuracy(y_true, y_pred),
              "f1_score": metrics.f1_score(y_true, y_pred)}  # "fresh" is the positive class
    print(f"fine-tuned: test accuracy {report['accuracy']:.4f}, F1 {report['f1_score']:.3f} "
          f"(text_cnn.py: 0.739) in {clock():.0f}s")

    plot_losses(out / "curves.png", {"training loss": losses}, title="fine-tuning MiniLM")
    plot_confusion_matrix(out / "confusion.png", metrics.confusion_matrix(y_true, y_pred, 2),
                          class_names=["rotten", "fresh"], title="fine-tuned MiniLM: test reviews")
    print(f"wrote {out / 'curves.png'} and {out / 'confusion.png'}")
    return {"losses": losses, "test_accuracy": report["accuracy"], **report,
            "frozen": frozen}


if __name__ == "__main__":
    main()
