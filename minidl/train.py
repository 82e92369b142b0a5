"""A Keras-style training loop over minidl models: ``fit``, ``evaluate``, ``predict`` and callbacks.

A Keras program translates line by line::

    # Keras                                         # minidl
    model.compile(optimizer="adam",                 optimizer = optim.Adam(model.parameters())
                  loss="sparse_categorical_crossentropy",
                                                    loss_fn = nn.CrossEntropyLoss()  # takes logits
                  metrics=["accuracy"])             metrics = ["accuracy"]
    history = model.fit(x, y, epochs=10,            history = fit(model, (x, y), loss_fn, optimizer,
                        batch_size=32,                            epochs=10, batch_size=32,
                        validation_data=(xv, yv),                 validation_data=(xv, yv),
                        callbacks=[EarlyStopping(               callbacks=[EarlyStopping(
                            patience=3)])                             patience=3)], metrics=metrics)
    history.history["val_loss"]                     history["val_loss"]
    model.evaluate(xt, yt)                          evaluate(model, (xt, yt), loss_fn,
                                                             metrics=metrics)
    model.predict(xn)                               predict(model, xn)

Inside a data-parallel script (``init_process_group`` and a ``DistributedDataParallel`` model)
``fit`` runs unchanged: ``(x, y)`` data is split between the ranks (a ``DistributedSampler`` for
training, every W-th example for validation; a DataLoader is used as it is, with its sampler's
``set_epoch`` called each epoch), the logs are those of all ranks' examples together (losses and
metrics over the gathered outputs, identical on every rank, so callbacks decide alike), and only
rank 0 prints and writes checkpoints.

Differences: the model outputs logits (no softmax layer; the loss applies it); there is no
``validation_split`` (split first, e.g. ``minidl.datasets.train_test_split``); epochs in logs and
callbacks count from 0, while printed epochs and ``{epoch}`` in a checkpoint path count from 1.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import sys
import time

import numpy as np

from minidl import backend, distributed, random
from minidl import metrics as metric_module
from minidl.autograd import no_grad
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.serialization import save
from minidl.tensors import Tensor

METRICS = ("accuracy", "top_k_accuracy", "precision", "recall", "f1_score", "mean_squared_error",
           "mean_absolute_error", "r2_score")


class History:
    """Per-epoch logs of :func:`fit`: ``history["loss"]``, ``["val_accuracy"]``, ``["lr"]``..."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path) -> None:
        """Write a PNG with one panel per quantity (training and validation curves together)."""
        try:
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise RuntimeError('History.plot needs matplotlib: pip install matplotlib') from None
        names = [key for key in self.history if not key.startswith("val_")]
        figure = Figure(figsize=(4 * max(len(names), 1), 3.2))
        epochs = [e + 1 for e in self.epoch]
        for axes, name in zip(figure.subplots(1, max(len(names), 1), squeeze=False)[0], names):
            axes.plot(epochs, self.history[name], marker=".", label="training")
            if "val_" + name in self.history:
                axes.plot(epochs, self.history["val_" + name], marker=".", label="validation")
                axes.legend()
            scale = "log" if name.startswith("lr") else "linear"
            axes.set(title=name, xlabel="epoch", yscale=scale)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        figure.savefig(path, dpi=100)


class Callback:
    """Hooks called by :func:`fit`, which sets ``model``, ``optimizer`` and ``scheduler`` first.

    Set ``self.stop_training = True`` in a hook to end training after the current epoch. ``logs``
    holds the epoch's values (``loss``, ``val_loss``, metrics, ``lr``); ``on_epoch_end`` may add
    keys, which History records.
    """

    def bind(self, model, optimizer, scheduler=None) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.stop_training = False

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch: int, logs=None): ...
    def on_epoch_end(self, epoch: int, logs=None): ...
    def on_train_end(self, logs=None): ...


class _Monitor:
    """Best value of a logged quantity: in mode "min" lower is better, in "max" higher."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float = 0.0):
        if mode == "auto":
            better_high = ("acc", "precision", "recall", "f1", "r2")
            mode = "max" if any(word in monitor for word in better_high) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{self.owner} monitors {self.monitor!r}, which is not logged; logged: "
                           f"{sorted(logs)} (val_* keys need validation_data)")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets the weights of its best epoch back when training
    ends (whether it stopped early or not, as Keras 3).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", restore_best_weights: bool = False):
        self.monitor, self.min_delta, self.patience = monitor, min_delta, patience
        self.verbose, self.mode, self.restore_best_weights = verbose, mode, restore_best_weights

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor("EarlyStopping", self.monitor, self.mode, self.min_delta)
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, None, None, None

    def on_epoch_end(self, epoch: int, logs=None):
        value = self.tracker.value(logs)
        if self.tracker.improved(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v._data.copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stop_training, self.stopped_epoch = True, epoch
            if self.verbose and _is_main_process():
                print(f"Epoch {epoch + 1}: early stopping ({self.monitor} best "
                      f"{self.tracker.best:.4f} at epoch {self.best_epoch + 1})")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save a checkpoint after each epoch (or only when ``monitor`` improved) with minidl.save.

    The file holds ``{"model", "optimizer", "scheduler", "epoch", "logs", "rng"}``; ``filepath``
    may name ``{epoch}`` (from 1) and logged values, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.st"``.
    To resume exactly, restore all of it, then ``fit(..., initial_epoch=checkpoint["epoch"] + 1)``;
    ``rng`` covers shuffling unless ``fit`` got its own ``generator`` (then save that one's state).
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto"):
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.mode = save_best_only, mode

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor("ModelCheckpoint", self.monitor, self.mode)

    def on_epoch_end(self, epoch: int, logs=None):
        if self.save_best_only:
            value = self.tracker.value(logs)
            if not self.tracker.improved(value):
                return
            self.tracker.best = value
        if not _is_main_process():  # every rank holds the same model: one file is enough
            return
        path = self.filepath.format(epoch=epoch + 1, **logs)
        scheduler = self.scheduler.state_dict() if hasattr(self.scheduler, "state_dict") else None
        save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
              "scheduler": scheduler, "epoch": epoch, "logs": dict(logs),
              "rng": random.get_rng_state()}, path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}")


class LearningRateMonitor(Callback):
    """Log every parameter group's learning rate (``lr_group0``, ...) at the start of each epoch."""

    def on_train_begin(self, logs=None):
        self.lrs: list[list[float]] = []

    def on_epoch_begin(self, epoch: int, logs=None):
        self.lrs.append([float(group["lr"]) for group in self.optimizer.param_groups])

    def on_epoch_end(self, epoch: int, logs=None):
        logs.update({f"lr_group{i}": lr for i, lr in enumerate(self.lrs[-1])})


def fit(model, train_data, loss_fn, optimizer, epochs: int, batch_size: int = 32,
        validation_data=None, metrics=("accuracy",), scheduler=None, callbacks=(), device=None,
        shuffle: bool = True, verbose: int = 1, generator: random.Generator | None = None,
        initial_epoch: int = 0) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch :class:`History`.

    Args:
        train_data: ``(x, y)`` arrays/Tensors (batched by ``batch_size``, shuffled from
            ``generator``) or a :class:`DataLoader` (used as it is).
        loss_fn: ``loss_fn(output, target)`` -> a scalar Tensor averaged over the batch.
        optimizer: a ``minidl.optim`` optimizer over ``model.parameters()``.
        validation_data: like ``train_data``, evaluated after each epoch (``val_*`` keys).
        metrics: names from :mod:`minidl.metrics` (``"accuracy"``...), callables
            ``fn(y_true, y_pred)`` or a dict of name -> either; computed on the epoch's outputs.
        scheduler: stepped once per epoch; a scheduler whose ``step`` takes ``metrics``
            (``ReduceLROnPlateau``) gets ``val_loss`` (``loss`` without validation data).
        device: where to train; default: the device of the model's parameters.
        verbose: 0 silent; 1 a progress bar per epoch (tqdm, on a terminal) or one line per epoch.
        initial_epoch: the epoch to start from (to resume from a checkpoint).
    """
    parallel = distributed.is_initialized() and distributed.get_world_size() > 1
    loader = _loader(train_data, batch_size, shuffle, generator, "train" if parallel else None)
    val_loader = None
    if validation_data is not None:
        val_loader = _loader(validation_data, batch_size, False, None, "eval" if parallel else None)
    if not _is_main_process():
        verbose = 0
    metric_fns = _metric_functions(metrics)
    device = _device(model, device)
    history = History()
    for callback in callbacks:
        callback.bind(model, optimizer, scheduler)
        callback.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        start = time.perf_counter()
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        lr = float(optimizer.param_groups[0]["lr"])
        label = f"Epoch {epoch + 1}/{epochs}"
        bar = _progress(len(loader), label, verbose)
        if hasattr(loader.sampler, "set_epoch"):  # a DistributedSampler: this epoch's order
            loader.sampler.set_epoch(epoch)
        logs = _run(model, loader, loss_fn, metric_fns, device, optimizer, bar, parallel)
        if val_loader is not None:
            val_logs = _run(model, val_loader, loss_fn, metric_fns, device, None, None, parallel)
            logs.update({"val_" + key: value for key, value in val_logs.items()})
        logs["lr"] = lr
        if scheduler is not None and "metrics" in inspect.signature(scheduler.step).parameters:
            scheduler.step(logs["val_loss" if val_loader else "loss"])
        elif scheduler is not None:
            scheduler.step()
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        history.append(epoch, logs)
        _report(bar, label, logs, time.perf_counter() - start, verbose)
        if any(callback.stop_training for callback in callbacks):
            break
    for callback in callbacks:
        callback.on_train_end()
    return history


def evaluate(model, data, loss_fn, metrics=(), batch_size: int = 32, device=None) -> dict:
    """``{"loss": ..., <metric>: ...}`` of ``model`` on ``data`` ((x, y) or a DataLoader), in eval
    mode under ``no_grad``."""
    loader = _loader(data, batch_size, False, None, None)
    return _run(model, loader, loss_fn, _metric_functions(metrics), _device(model, device), None)


def predict(model, x, batch_size: int = 32, device=None) -> Tensor:
    """The model's outputs for ``x`` (array, Tensor, or a DataLoader yielding x or (x, ...)).

    Runs in eval mode under ``no_grad`` (the previous mode is restored); concatenates the batches.
    """
    if isinstance(x, DataLoader):
        loader = x
    else:
        loader = DataLoader(TensorDataset(x), batch_size=batch_size)
    device, was_training = _device(model, device), model.training
    model.eval()
    outputs = []
    with no_grad():
        for batch in loader:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            outputs.append(model(inputs.to(device))._data)
    model.train(was_training)
    xp = backend.get_array_module(outputs[0]) if outputs else np
    return Tensor(xp.concatenate(outputs)) if outputs else Tensor(np.zeros((0,), np.float32))


# ----- the epoch loop -----------------------------------------------------------------------------
def _run(model, loader, loss_fn, metric_fns: dict, device, optimizer, bar=None,
         parallel: bool = False) -> dict:
    """One pass over ``loader``: training steps if ``optimizer`` is given, else evaluation;
    ``parallel``: the logs cover every rank's examples."""
    was_training = model.training
    model.train(optimizer is not None)
    total, count, outputs, targets = 0.0, 0, [], []
    with no_grad() if optimizer is None else contextlib.nullcontext():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            output = model(x)
            loss = loss_fn(output, y)
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            size = len(x)
            total, count = total + loss.item() * size, count + size
            if metric_fns:
                outputs.append(output.detach().numpy())
                targets.append(y.numpy())
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
                bar.update()
    if optimizer is None:
        model.train(was_training)
    if parallel:
        total, count, outputs, targets = _gathered(total, count, outputs, targets)
    if count == 0:
        raise ValueError("fit/evaluate: the data has no batches (is it empty, or is drop_last on?)")
    logs = {"loss": total / count}
    if metric_fns:
        y_true, y_pred = np.concatenate(targets), np.concatenate(outputs)
        logs.update({name: float(fn(y_true, y_pred)) for name, fn in metric_fns.items()})
    return logs


def _report(bar, label: str, logs: dict, seconds: float, verbose: int) -> None:
    """Put the epoch's logs on its progress bar, or print them as one line."""
    if bar is not None:
        bar.set_postfix({key: f"{value:.4g}" for key, value in logs.items()})
        bar.close()
    elif verbose > 0:
        print(f"{label} - " + " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
              + f" - {seconds:.1f}s", flush=True)


def _progress(total: int, label: str, verbose: int):
    """A tqdm bar of ``total`` batches on a terminal when verbose and tqdm exists, else None."""
    if verbose <= 0 or not sys.stdout.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=label, unit="batch", leave=True, file=sys.stdout)


def _loader(data, batch_size: int, shuffle: bool, generator, share: str | None) -> DataLoader:
    """A DataLoader over ``data``, or with ``share`` over this rank's share of an ``(x, y)``
    pair: "train", a DistributedSampler (equal shares, so every rank takes as many steps),
    seeded alike on every rank; "eval", every W-th example (each seen once in all)."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        dataset = TensorDataset(*data)
        if share is None:
            return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                              generator=generator)
        if share == "train":
            seed = _shared_seed(generator) if shuffle else 0
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        else:
            sampler = range(distributed.get_rank(), len(dataset), distributed.get_world_size())
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    raise TypeError(f"expected data as an (x, y) pair of arrays/Tensors or a DataLoader, got a "
                    f"{type(data).__name__}")


def _is_main_process() -> bool:
    """Rank 0 of a data-parallel run, or a process on its own."""
    return not distributed.is_initialized() or distributed.get_rank() == 0


def _shared_seed(generator) -> int:
    """A seed drawn on rank 0 from ``generator`` (default: the global one), given to all."""
    seed = [int(random.generator_for(np, generator).integers(2 ** 31))]
    distributed.broadcast_object_list(seed, src=0)
    return seed[0]


def _gathered(total: float, count: int, outputs: list, targets: list) -> tuple:
    """The sums and outputs of every rank's epoch together (each rank saw its share)."""
    parts = [None] * distributed.get_world_size()
    distributed.all_gather_object(parts, (total, count, outputs, targets))
    return (sum(part[0] for part in parts), sum(part[1] for part in parts),
            [o for part in parts for o in part[2]], [t for part in parts for t in part[3]])


def _metric_functions(metrics) -> dict:
    """name -> fn(y_true, y_pred), from names in METRICS, callables, or a dict of either."""
    if not isinstance(metrics, dict):
        metrics = {m if isinstance(m, str) else m.__name__: m for m in metrics}
    functions = {}
    for name, metric in metrics.items():
        if isinstance(metric, str) and metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {METRICS}, or pass a callable "
                             "fn(y_true, y_pred)")
        functions[name] = getattr(metric_module, metric) if isinstance(metric, str) else metric
    return functions


def _device(model, device):
    if device is not None:
        model.to(device)
        return backend.Device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else backend.CPU
