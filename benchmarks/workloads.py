"""Every measured workload, written once against the engine interface of ``benchmarks.engines``.

A workload builds its model from ``E.nn`` (PyTorch's names, so the same line builds either engine),
draws its batch with NumPy (the same arrays for both engines), and says how one step runs:

- ``train``: zero_grad, forward, cross-entropy (mean over every sample or token) or the workload's
  own ``loss``, backward, step;
- ``infer``: forward in eval mode under no_grad;
- ``fwd``: the forward of one op;
- ``fwd+bwd``: the forward of one op and ``output.backward(gy)`` (or ``backward()`` for a scalar).

Batch keys: ``x`` the input, ``target`` the class indices, ``gy`` the output gradient; keys named
in ``grad_inputs`` become leaves that require grad.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "train", "infer", "fwd" or "fwd+bwd"
    title: str
    batch: Callable  # batch(rng) -> dict of NumPy arrays
    forward: Callable  # forward(E, model, tensors) -> Tensor
    build: Callable = lambda E: None  # build(E) -> Module or None
    optimizer: tuple = ()  # ("Adam", {"lr": 1e-3}) for a training workload
    grad_inputs: tuple = ()
    inner: int = 1  # calls per timed sample, for ops too short to time one by one
    unit: str = "ms"
    group: str = field(default="", compare=False)  # "model", "op" or "overhead"
    loss: Callable | None = None  # loss(E, model, tensors) -> scalar, instead of cross-entropy
    sweep: tuple = ()  # (family title, size name, size) for a workload of the size sweeps


def _normal(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _classes(rng, classes, *shape):
    return rng.integers(0, classes, size=shape).astype(np.int64)


def _images(shape, classes=10):
    return lambda rng: {"x": _normal(rng, *shape), "target": _classes(rng, classes, shape[0])}


def _tokens(vocabulary, batch, seq, classes=None, per_token=True):
    target_shape = (batch, seq) if per_token else (batch,)
    return lambda rng: {"x": _classes(rng, vocabulary, batch, seq),
                        "target": _classes(rng, classes or vocabulary, *target_shape)}


def _apply(E, model, t):
    return model(t["x"])


# ----- models -------------------------------------------------------------------------------------
def build_mlp(E):
    nn = E.nn
    return nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


def wide_mlp(hidden: int):
    def build(E):
        nn = E.nn
        return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                             nn.ReLU(), nn.Linear(hidden, 10))
    return build


def build_cnn(E):
    nn = E.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def build_rnn(E):
    nn = E.nn
    return nn.ModuleDict({"rnn": nn.RNN(28, 128, batch_first=True), "head": nn.Linear(128, 10)})


def forward_rnn(E, model, t):
    outputs, _ = model["rnn"](t["x"])  # (B, T, H)
    return model["head"](outputs[:, -1])  # (B, 10)


def lstm_lm(hidden: int):
    def build(E):
        nn = E.nn
        return nn.ModuleDict({"embed": nn.Embedding(65, 64),
                              "lstm": nn.LSTM(64, hidden, batch_first=True),
                              "head": nn.Linear(hidden, 65)})
    return build


def forward_lstm_lm(E, model, t):
    outputs, _ = model["lstm"](model["embed"](t["x"]))  # (B, T, 128)
    return model["head"](outputs)  # (B, T, 65)


def build_transformer(E):
    nn = E.nn
    layers = [nn.TransformerEncoderLayer(128, 4, dim_feedforward=512, dropout=0.0, batch_first=True)
              for _ in range(2)]
    return nn.ModuleDict({"embed": nn.Embedding(1000, 128), "layers": nn.ModuleList(layers),
                          "head": nn.Linear(128, 1000)})


def forward_transformer(E, model, t):
    x = model["embed"](t["x"])  # (B, T, 128)
    for layer in model["layers"]:
        x = layer(x)
    return model["head"](x)  # (B, T, 1000)


def build_conv1d_text(E):
    nn = E.nn
    return nn.ModuleDict({"embed": nn.Embedding(1000, 64), "conv": nn.Conv1d(64, 128, 5),
                          "pool": nn.MaxPool1d(5), "head": nn.Linear(128 * 19, 10)})


def forward_conv1d_text(E, model, t):
    x = model["embed"](t["x"]).transpose(1, 2)  # (B, T, C) -> (B, C, T) = (B, 64, 100)
    x = model["pool"](E.F.relu(model["conv"](x)))  # (B, 128, 96) -> (B, 128, 19)
    return model["head"](x.reshape(x.shape[0], -1))  # (B, 2432) -> (B, 10)


def build_conv3d_video(E):
    nn = E.nn
    return nn.Sequential(nn.Conv3d(1, 16, 3), nn.ReLU(), nn.MaxPool3d(2),  # (8, 16, 7, 15, 15)
                         nn.Conv3d(16, 32, 3), nn.ReLU(), nn.MaxPool3d(2),  # (8, 32, 2, 6, 6)
                         nn.Flatten(), nn.Linear(32 * 2 * 6 * 6, 10))


def build_lstm_cell(E):
    return E.nn.LSTMCell(64, 128)


def forward_lstm_cell(E, model, t):
    h, c = model(t["x"], (t["h"], t["c"]))
    return h + c  # one output, so one backward covers both gates' paths


def build_tiny_mlp(E):
    nn = E.nn
    return nn.Sequential(*[module for _ in range(10) for module in (nn.Linear(8, 8), nn.ReLU())])


def build_critic(E):
    """WGAN-GP's convolutional critic for 28×28 images (no normalisation layers, as the paper)."""
    nn = E.nn
    return nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                         nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64 * 7 * 7, 1))


def critic_batch(rng):
    return {"x": _normal(rng, 64, 1, 28, 28), "fake": _normal(rng, 64, 1, 28, 28),
            "mix": rng.random((64, 1, 1, 1)).astype(np.float32)}


def wgan_gp_critic_loss(E, critic, t):
    """D(fake) - D(real) + 10 (‖∇D(x̂)‖ - 1)² at x̂ = εx + (1-ε)x̃: a backward through a gradient."""
    mixed = (t["mix"] * t["x"] + (1 - t["mix"]) * t["fake"]).detach().requires_grad_()
    (slope,) = E.grad(critic(mixed).sum(), [mixed], create_graph=True)  # (B, 1, 28, 28)
    norm = (slope.reshape(slope.shape[0], -1) ** 2).sum(1).sqrt()  # (B,)
    return critic(t["fake"]).mean() - critic(t["x"]).mean() + 10 * ((norm - 1) ** 2).mean()


def forward_hvp_mlp(E, model, t):
    """H g: the Hessian of the MLP's loss times its own gradient (a backward through a backward)."""
    params = list(model.parameters())
    grads = E.grad(E.F.cross_entropy(model(t["x"]), t["target"]), params, create_graph=True)
    direction = sum((g * g.detach()).sum() for g in grads)
    return E.grad(direction, params)[0]  # (100, 784)


SGD, ADAM = ("SGD", {"lr": 0.01}), ("Adam", {"lr": 1e-3})

MODELS = [
    Workload("mlp", "train", "MLP 784-100-10, batch 128, Adam", _images((128, 784)), _apply,
             build_mlp, ADAM),
    Workload("cnn", "train", "MNIST CNN, batch 64, SGD", _images((64, 1, 28, 28)), _apply,
             build_cnn, SGD),
    Workload("rnn", "train", "RNN 28→128 × 28 steps, batch 64, SGD", _images((64, 28, 28)),
             forward_rnn, build_rnn, SGD),
    Workload("lstm_lm", "train", "LSTM char LM, seq 64, batch 32, Adam", _tokens(65, 32, 64),
             forward_lstm_lm, lstm_lm(128), ADAM),
    Workload("transformer", "train", "Transformer encoder ×2, seq 64, batch 32, Adam",
             _tokens(1000, 32, 64), forward_transformer, build_transformer, ADAM),
    Workload("conv1d_text", "train", "Conv1d text model, seq 100, batch 32, SGD",
             _tokens(1000, 32, 100, classes=10, per_token=False), forward_conv1d_text,
             build_conv1d_text, SGD),
    Workload("conv3d_video", "train", "Conv3d video model, 16×32×32, batch 8, SGD",
             _images((8, 1, 16, 32, 32)), _apply, build_conv3d_video, SGD),
    Workload("wgan_gp_critic", "train", "WGAN-GP critic step (gradient penalty), batch 64, Adam",
             critic_batch, _apply, build_critic, ("Adam", {"lr": 1e-4, "betas": (0.0, 0.9)}),
             loss=wgan_gp_critic_loss),
]
INFERENCE = [replace(model, name=model.name + "_infer", kind="infer", optimizer=(),
                     title=model.title.rsplit(",", 1)[0] + " (inference)")
             for model in MODELS if model.name in ("mlp", "cnn", "transformer")]


def _op(name, kind, title, shapes, forward, grad_inputs, build=lambda E: None, extra=None, **options):
    """An op workload: ``shapes`` are the float32 inputs, ``extra(rng)`` any others (targets, gy)."""
    def batch(rng):
        arrays = {key: _normal(rng, *shape) for key, shape in shapes.items()}
        return {**arrays, **(extra(rng) if extra else {})}
    return Workload(name, kind, title, batch, forward, build, grad_inputs=grad_inputs, **options)


def _gy(*shape):
    return lambda rng: {"gy": _normal(rng, *shape)}


def _cross_entropy_op(rows, classes):
    return _op(f"cross_entropy_{rows}x{classes}", "fwd+bwd", f"softmax-cross-entropy ({rows}, {classes})",
               {"x": (rows, classes)}, lambda E, m, t: E.F.cross_entropy(t["x"], t["target"]), ("x",),
               extra=lambda rng: {"target": _classes(rng, classes, rows)})


OPS = [
    _op("matmul_512", "fwd", "matmul 512×512 @ 512×512", {"a": (512, 512), "b": (512, 512)},
        lambda E, m, t: E.matmul(t["a"], t["b"]), ()),
    _op("conv2d", "fwd+bwd", "conv2d (64,32,14,14)→64, 3×3, p1",
        {"x": (64, 32, 14, 14), "w": (64, 32, 3, 3), "b": (64,)},
        lambda E, m, t: E.F.conv2d(t["x"], t["w"], t["b"], padding=1), ("x", "w", "b"),
        extra=_gy(64, 64, 14, 14)),
    _op("maxpool2d", "fwd+bwd", "max_pool2d (64,32,28,28), k2", {"x": (64, 32, 28, 28)},
        lambda E, m, t: E.F.max_pool2d(t["x"], 2), ("x",), extra=_gy(64, 32, 14, 14)),
    _cross_entropy_op(2048, 65),
    _cross_entropy_op(128, 10),
    _op("lstm_cell", "fwd+bwd", "LSTMCell 64→128, batch 32 (h+c)",
        {"x": (32, 64), "h": (32, 128), "c": (32, 128)}, forward_lstm_cell, ("x", "h", "c"),
        build_lstm_cell, extra=_gy(32, 128)),
    _op("attention", "fwd+bwd", "scaled_dot_product_attention (32,4,64,32)",
        {"q": (32, 4, 64, 32), "k": (32, 4, 64, 32), "v": (32, 4, 64, 32)},
        lambda E, m, t: E.F.scaled_dot_product_attention(t["q"], t["k"], t["v"]), ("q", "k", "v"),
        extra=_gy(32, 4, 64, 32)),
    Workload("hvp_mlp", "fwd", "Hessian-vector product of the MLP 784-100-10 loss, batch 128",
             _images((128, 784)), forward_hvp_mlp, build_mlp),
]
OVERHEAD = [
    _op("add_tiny", "fwd", "a + b, 4×4, requires_grad (per op)", {"a": (4, 4), "b": (4, 4)},
        lambda E, m, t: t["a"] + t["b"], ("a", "b"), inner=100, unit="µs"),
    _op("matmul_4x4", "fwd", "matmul 4×4, requires_grad (per op)", {"a": (4, 4), "b": (4, 4)},
        lambda E, m, t: E.matmul(t["a"], t["b"]), ("a", "b"), inner=100, unit="µs"),
    _op("mlp_tiny", "fwd+bwd", "10 × (Linear 8→8, ReLU), batch 4, fwd+bwd", {"x": (4, 8)}, _apply,
        (), build_tiny_mlp, extra=_gy(4, 8), inner=10, unit="µs"),
]


def _sweep(family: str, size_name: str, sizes, make) -> list:
    """One workload per size: ``make(size)`` -> (name, kind, title, batch, forward, build, optimizer)."""
    workloads = []
    for size in sizes:
        name, kind, title, batch, forward, build, optimizer = make(size)
        workloads.append(Workload(name, kind, title, batch, forward, build, optimizer,
                                  sweep=(family, size_name, size)))
    return workloads


SWEEPS = [
    *_sweep("MLP 784-512-512-10 inference", "batch", (1, 32, 1024), lambda b: (
        f"mlp512_infer_b{b}", "infer", f"MLP 784-512-512-10, batch {b} (inference)",
        _images((b, 784)), _apply, wide_mlp(512), ())),
    *_sweep("Transformer encoder ×2 (d128, 4 heads) inference, batch 16", "seq", (32, 128, 512),
            lambda t: (f"transformer_infer_t{t}", "infer", f"Transformer encoder ×2, seq {t}, "
                       "batch 16 (inference)", _tokens(1000, 16, t), forward_transformer,
                       build_transformer, ())),
    *_sweep("Transformer encoder ×2 (d128, 4 heads) training, batch 16, Adam", "seq", (32, 128, 512),
            lambda t: (f"transformer_train_t{t}", "train", f"Transformer encoder ×2, seq {t}, "
                       "batch 16, Adam", _tokens(1000, 16, t), forward_transformer,
                       build_transformer, ADAM)),
    *_sweep("MNIST CNN training, SGD", "batch", (16, 64, 256), lambda b: (
        f"cnn_train_b{b}", "train", f"MNIST CNN, batch {b}, SGD", _images((b, 1, 28, 28)), _apply,
        build_cnn, SGD)),
    *_sweep("LSTM(64→256) char LM training, batch 32, Adam", "seq", (32, 128), lambda t: (
        f"lstm256_train_t{t}", "train", f"LSTM(64→256) char LM, seq {t}, batch 32, Adam",
        _tokens(65, 32, t), forward_lstm_lm, lstm_lm(256), ADAM)),
    *_sweep("MLP 784-H-H-10 training, batch 128, Adam", "H", (128, 512, 2048), lambda h: (
        f"mlp_train_h{h}", "train", f"MLP 784-{h}-{h}-10, batch 128, Adam", _images((128, 784)),
        _apply, wide_mlp(h), ADAM)),
]

WORKLOADS = {w.name: replace(w, group=group)
             for group, members in (("model", MODELS + INFERENCE), ("op", OPS), ("overhead", OVERHEAD),
                                    ("sweep", SWEEPS))
             for w in members}


def select(names) -> list:
    """The workloads named (or whose kind or group is named), in table order; all but the
    sweeps if none (a kind names the fixed-size table's workloads; ``sweep`` names the sweeps)."""
    if not names:
        return [w for w in WORKLOADS.values() if w.group != "sweep"]
    unknown = [n for n in names if not any(n in (w.name, w.kind, w.group) for w in WORKLOADS.values())]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(WORKLOADS)} or a group: train, infer, model, op, overhead, sweep")
    return [w for w in WORKLOADS.values()
            if any(n in (w.name, w.group) or (n == w.kind and w.group != "sweep") for n in names)]
