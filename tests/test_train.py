"""fit / evaluate / predict, callbacks, History, and bitwise-exact resume from a checkpoint."""
import io
import sys

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.data import DataLoader, TensorDataset
from minidl.metrics import accuracy
from minidl.nn.loss import CrossEntropyLoss
from minidl.optim.adam import Adam
from minidl.optim.sgd import SGD
from minidl.serialization import load, save
from minidl.train import (
    Callback,
    EarlyStopping,
    History,
    LearningRateMonitor,
    ModelCheckpoint,
    evaluate,
    fit,
    predict,
)


def blobs(n=60, seed=0):
    """Three separable clusters in 4-d."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.standard_normal((n, 4)) + 3 * np.eye(3, 4)[y]).astype(np.float32)
    return x, y


def mlp(seed=0, dropout=0.0):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


class ModeRecorder(nn.Module):
    """Wraps a model and records whether it was called in training mode."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.modes = inner, []

    def forward(self, x):
        self.modes.append(self.training)
        return self.inner(x)


def test_fit_learns_and_records_history(capsys):
    x, y = blobs()
    model = ModeRecorder(mlp())
    history = fit(model, (x, y), CrossEntropyLoss(), Adam(model.parameters(), lr=0.05), epochs=4,
                  batch_size=16, validation_data=blobs(30, seed=1), verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()  # not a terminal: one line per epoch
    assert len(lines) == 4 and lines[0].startswith("Epoch 1/4 - loss: ")
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history.epoch == [0, 1, 2, 3] and all(len(v) == 4 for v in history.history.values())
    assert history["loss"][-1] < history["loss"][0] and history["val_accuracy"][-1] > 0.8
    assert history["lr"] == [0.05] * 4
    assert model.modes == ([True] * 4 + [False] * 2) * 4  # 4 training batches, 2 validation
    assert model.training


def test_evaluate_and_predict_match_a_manual_pass(capsys):
    x, y = blobs(25)
    model = mlp(dropout=0.5)
    fit(model, (x, y), CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    model.eval()
    with minidl.no_grad():
        logits = model(minidl.tensor(x))
    model.train()
    expected = CrossEntropyLoss()(logits, minidl.tensor(y)).item()
    logs = evaluate(model, (x, y), CrossEntropyLoss(), metrics=["accuracy"], batch_size=7)
    assert logs["loss"] == pytest.approx(expected, rel=1e-6)
    assert logs["accuracy"] == accuracy(y, logits)
    outputs = predict(model, minidl.tensor(x), batch_size=4)
    assert not outputs.requires_grad and model.training
    np.testing.assert_allclose(outputs.numpy(), logits.numpy(), rtol=1e-6, atol=1e-6)
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    batched = predict(model, loader).numpy()
    np.testing.assert_allclose(batched, outputs.numpy(), rtol=1e-6, atol=1e-6)


def test_custom_metrics_and_dataloader_input():
    x, y = blobs(40)
    model = mlp()
    loader = DataLoader(TensorDataset(x, y), 8, shuffle=True, generator=minidl.Generator(0))
    history = fit(model, loader, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), epochs=2,
                  metrics={"acc": "accuracy",
                           "errors": lambda t, p: float((t != p.argmax(1)).sum())},
                  verbose=0)
    assert history["errors"][-1] == round((1 - history["acc"][-1]) * 40)


def test_bad_arguments_are_clear():
    model, x, y = mlp(), *blobs(8)
    optimizer = SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"\(x, y\) pair of arrays/Tensors or a DataLoader, got"):
        fit(model, x, CrossEntropyLoss(), optimizer, epochs=1)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        fit(model, (x, y), CrossEntropyLoss(), optimizer, epochs=1, metrics=["auc"])
    with pytest.raises(KeyError, match="EarlyStopping monitors 'val_loss', which is not logged"):
        fit(model, (x, y), CrossEntropyLoss(), optimizer, epochs=1, callbacks=[EarlyStopping()],
            verbose=0)


def test_early_stopping_patience_and_restore_best_weights():
    model = mlp()
    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.1,
                            restore_best_weights=True)
    stopper.bind(model, None)
    stopper.on_train_begin()
    weights = {}
    for epoch, value in enumerate([3.0, 2.0, 1.95, 2.5, 1.0]):
        with minidl.no_grad():
            for param in model.parameters():
                param.fill_(epoch)
        weights[epoch] = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        stopper.on_epoch_end(epoch, {"val_loss": value})
        if stopper.stop_training:
            break
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1  # 1.95 is not 0.1 better than 2.0
    stopper.on_train_end()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights[1][key])


def test_early_stopping_ends_fit():
    x, y = blobs(16)
    model = mlp()
    history = fit(model, (x, y), CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), epochs=10,
                  shuffle=False, callbacks=[EarlyStopping(monitor="loss", patience=2)], verbose=0)
    assert len(history["loss"]) == 3  # epoch 0 sets the best; 1 and 2 do not improve on it


class HalveLR:
    """A minimal epoch scheduler: halves the learning rate at each step (the protocol fit uses)."""

    def __init__(self, optimizer):
        self.optimizer, self.calls = optimizer, 0

    def step(self):
        self.calls += 1
        for group in self.optimizer.param_groups:
            group["lr"] /= 2

    def state_dict(self):
        return {"calls": self.calls}


class PlateauLike:
    """Records the metric fit passes to a scheduler whose step takes ``metrics``."""

    def __init__(self):
        self.seen = []

    def step(self, metrics, epoch=None):
        self.seen.append(metrics)


def test_scheduler_steps_per_epoch_and_lr_is_logged(tmp_path):
    x, y = blobs(20)
    model = mlp()
    groups = [{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 0.4}]
    optimizer = SGD(groups, lr=0.2)
    scheduler = HalveLR(optimizer)
    history = fit(model, (x, y), CrossEntropyLoss(), optimizer, epochs=3, scheduler=scheduler,
                  callbacks=[LearningRateMonitor(),
                             ModelCheckpoint(tmp_path / "last.st", monitor="loss")],
                  verbose=0)
    assert history["lr"] == [0.2, 0.1, 0.05] and history["lr_group1"] == [0.4, 0.2, 0.1]
    assert scheduler.calls == 3 and load(tmp_path / "last.st")["scheduler"] == {"calls": 3}
    plateau = PlateauLike()
    history = fit(model, (x, y), CrossEntropyLoss(), optimizer, epochs=2, scheduler=plateau,
                  validation_data=(x[:5], y[:5]), verbose=0)
    assert plateau.seen == history["val_loss"]


def test_model_checkpoint_keeps_the_best(tmp_path):
    x, y = blobs(30)
    model = mlp()

    class Snapshot(Callback):
        def on_train_begin(self, logs=None):
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append({k: v.numpy().copy() for k, v in self.model.state_dict().items()})

    snapshot = Snapshot()
    best = ModelCheckpoint(tmp_path / "best.st", monitor="val_accuracy", save_best_only=True)
    every = ModelCheckpoint(tmp_path / "epoch{epoch}-{loss:.2f}.st", monitor="loss")
    history = fit(model, (x, y), CrossEntropyLoss(), SGD(model.parameters(), lr=0.3), epochs=4,
                  validation_data=blobs(20, seed=3), callbacks=[snapshot, best, every], verbose=0)
    best_epoch = int(np.argmax(history["val_accuracy"]))  # the first of equal maxima
    checkpoint = load(tmp_path / "best.st")
    assert checkpoint["epoch"] == best_epoch
    for key, value in checkpoint["model"].items():
        np.testing.assert_array_equal(value.numpy(), snapshot.weights[best_epoch][key])
    assert sorted(p.name for p in tmp_path.glob("epoch*")) == [
        f"epoch{e + 1}-{loss:.2f}.st" for e, loss in enumerate(history["loss"])]


def test_history_plot(tmp_path, monkeypatch):
    history = History()
    for epoch in range(3):
        history.append(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 1.2 / (epoch + 1), "lr": 0.1})
    history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeError, match="History.plot needs matplotlib: pip install matplotlib"):
        history.plot(tmp_path / "again.png")


def train_steps(model, optimizer, loader, steps, losses, start_epoch=0):
    """Plain training loop over epochs until ``steps`` losses are recorded; returns the epoch."""
    epoch = start_epoch
    while True:
        for x, y in loader:
            optimizer.zero_grad()
            loss = CrossEntropyLoss()(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == steps:
                return epoch
        epoch += 1


@pytest.mark.parametrize("make_optimizer", [lambda p: Adam(p, lr=0.01),
                                            lambda p: SGD(p, lr=0.1, momentum=0.9)],
                         ids=["Adam", "SGD"])
def test_resume_mid_epoch_is_bitwise_exact(tmp_path, make_optimizer):
    x, y = blobs(50)

    def setup(seed):
        model = mlp(seed, dropout=0.3)  # dropout: the global RNG state matters too
        loader = DataLoader(TensorDataset(x, y), 8, shuffle=True, generator=minidl.Generator(seed))
        return model, make_optimizer(model.parameters()), loader

    model, optimizer, loader = setup(0)
    straight = []
    train_steps(model, optimizer, loader, 17, straight)  # 7 batches per epoch: ends mid-epoch 2

    model, optimizer, loader = setup(0)
    first = []
    iterator_epoch = train_steps(model, optimizer, loader, 10, first)  # stops mid-epoch 1
    save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": iterator_epoch,
          "loader": loader.state_dict(), "generator": loader.generator.get_state(),
          "rng": minidl.get_rng_state()}, tmp_path / "mid.st")

    minidl.manual_seed(123)  # disturb everything the checkpoint must restore
    model, optimizer, loader = setup(1)
    checkpoint = load(tmp_path / "mid.st")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    loader.load_state_dict(checkpoint["loader"])
    loader.generator.set_state(checkpoint["generator"])
    minidl.set_rng_state(checkpoint["rng"])
    rest = list(first)
    train_steps(model, optimizer, loader, 17, rest, start_epoch=checkpoint["epoch"])
    assert rest == straight  # bitwise: Python floats compared with ==


def test_fit_resume_from_model_checkpoint_is_bitwise_exact(tmp_path):
    x, y = blobs(40)

    def run(epochs, initial_epoch=0, checkpoint=None):
        model = mlp(0, dropout=0.2)
        optimizer = Adam(model.parameters(), lr=0.02)
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            minidl.set_rng_state(checkpoint["rng"])  # shuffling and dropout both draw from it
        return fit(model, (x, y), CrossEntropyLoss(), optimizer, epochs=epochs, batch_size=16,
                   callbacks=[ModelCheckpoint(tmp_path / "last.st", monitor="loss")],
                   initial_epoch=initial_epoch, verbose=0)

    straight = run(5)["loss"]
    run(2)
    checkpoint = load(tmp_path / "last.st")
    resumed = run(5, initial_epoch=checkpoint["epoch"] + 1, checkpoint=checkpoint)
    assert resumed.epoch == [2, 3, 4] and resumed["loss"] == straight[2:]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_shows_loss_and_metrics(monkeypatch):
    pytest.importorskip("tqdm")
    x, y = blobs(20)
    model = mlp()
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    fit(model, (x, y), CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), epochs=2, batch_size=8,
        validation_data=(x, y), verbose=1)
    text = terminal.getvalue()
    assert "Epoch 2/2: 100%" in text and "3/3" in text
    assert "accuracy=" in text and "val_loss=" in text and "lr=0.1" in text
    assert "Epoch 1/2 - loss" not in text  # the bar replaces the plain line
