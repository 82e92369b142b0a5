"""Whole models move between PyTorch and minidl through state_dict, both ways, with equal outputs."""
import numpy as np
import pytest
import torch

import minidl
from minidl import nn


class LanguageModel:
    """Embedding-LSTM-Linear, written once for both engines (``m`` is torch or minidl)."""

    @staticmethod
    def build(m):
        class Model(m.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = m.nn.Embedding(65, 16)
                self.lstm = m.nn.LSTM(16, 32, num_layers=2, batch_first=True)
                self.head = m.nn.Linear(32, 65)

            def forward(self, tokens):
                hidden, _ = self.lstm(self.embed(tokens))  # (B, T, 32)
                return self.head(hidden)  # (B, T, 65)
        return Model()


def cnn(m):
    return m.nn.Sequential(
        m.nn.Conv2d(1, 8, 3, padding=1), m.nn.BatchNorm2d(8), m.nn.ReLU(), m.nn.MaxPool2d(2),
        m.nn.Conv2d(8, 16, 3, padding=1), m.nn.ReLU(), m.nn.MaxPool2d(2),
        m.nn.Flatten(), m.nn.Linear(16 * 7 * 7, 32), m.nn.ReLU(), m.nn.Linear(32, 10))


def encoder(m):
    layer = m.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
    return m.nn.TransformerEncoder(layer, num_layers=2)


MODELS = {
    "cnn": (cnn, lambda rng: rng.standard_normal((4, 1, 28, 28)).astype(np.float32)),
    "lstm_lm": (LanguageModel.build, lambda rng: rng.integers(0, 65, (3, 12))),
    "transformer_encoder": (encoder, lambda rng: rng.standard_normal((2, 10, 32)).astype(np.float32)),
}


def _run(model, engine, x):
    model.eval()
    with engine.no_grad():
        return model(engine.tensor(x)).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_weights_into_minidl_and_back(name):
    build, make_input = MODELS[name]
    rng = np.random.default_rng(0)
    x = make_input(rng)
    torch.manual_seed(0)
    theirs = build(torch)
    if name == "cnn":  # non-trivial running statistics
        theirs.train()
        theirs(torch.tensor(make_input(rng)))
    ours = build(minidl)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_allclose(_run(ours, minidl, x), _run(theirs, torch, x), rtol=1e-4, atol=1e-5)

    minidl.manual_seed(1)
    fresh_ours = build(minidl)  # different weights, then moved into a fresh torch model
    fresh_theirs = build(torch)
    fresh_theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy()))
                                  for k, v in fresh_ours.state_dict().items()})
    np.testing.assert_allclose(_run(fresh_theirs, torch, x), _run(fresh_ours, minidl, x),
                               rtol=1e-4, atol=1e-5)


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys():
    model = nn.Sequential(nn.Linear(3, 2))
    state = {"0.weight": np.zeros((2, 4), np.float32), "1.bias": np.zeros(2, np.float32)}
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: 0.bias" in message and "unexpected keys: 1.bias" in message
    assert "size mismatch for 0.weight: checkpoint has shape (2, 4), the model has (2, 3)" in message
