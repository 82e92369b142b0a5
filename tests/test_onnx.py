"""minidl.onnx.export: every layer family and the tensor ops they use run in ONNX Runtime.

Each case exports at one batch size with a dynamic batch axis, passes onnx's full check, and
gives minidl's outputs (float32, rtol 1e-4) at that batch size and at another one. The example
models, attention, the Transformer layers and the recurrent layers are in test_onnx_models.py;
the errors and the deployment example are here too.
"""
import importlib.util
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime
import pytest

import minidl
import minidl.onnx
from minidl import nn

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


# ----- helpers (test_onnx_models.py imports them) ------------------------------------------------

def session(path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on one thread (the test machine's cores are shared)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def flat_numpy(result) -> list:
    """A model's (nested) outputs flattened in order, as export flattens them, as arrays."""
    if isinstance(result, (tuple, list)):
        return [array for item in result for array in flat_numpy(item)]
    return [result.numpy()]


def minidl_outputs(model, inputs) -> list:
    if hasattr(model, "eval"):
        model.eval()
    with minidl.no_grad():
        return flat_numpy(model(*inputs))


def check_roundtrip(model, make_inputs, tmp_path, batch_axes=None, sizes=(2, 3), atol=1e-5,
                    opset_version=17) -> onnx.ModelProto:
    """Export ``model`` on ``make_inputs(sizes[0])`` with dynamic axes (``batch_axes``: per input
    an axis named "batch", None, or a dict {axis: symbol}; default axis 0), check the file fully,
    and compare ONNX Runtime's outputs with minidl's on ``make_inputs(size)`` for each size."""
    inputs = make_inputs(sizes[0])
    names = [f"input_{i}" for i in range(len(inputs))]
    axes = batch_axes if batch_axes is not None else [0] * len(inputs)
    dynamic = {name: axis if isinstance(axis, dict) else {axis: "batch"}
               for name, axis in zip(names, axes) if axis is not None}
    path = tmp_path / "model.onnx"
    minidl.onnx.export(model, tuple(inputs), path, input_names=names, opset_version=opset_version,
                       dynamic_axes=dynamic)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    runtime = session(path)
    for size in sizes:
        feed = make_inputs(size)
        expected = minidl_outputs(model, feed)
        got = runtime.run(None, {name: t.numpy() for name, t in zip(names, feed)})
        assert len(got) == len(expected)
        for index, (value, reference) in enumerate(zip(got, expected)):
            assert value.shape == reference.shape, f"batch {size}, output {index}"
            np.testing.assert_allclose(value, reference, rtol=1e-4, atol=atol,
                                       err_msg=f"batch {size}, output {index}")
    return proto


def randn(*shape, seed: int = 0) -> minidl.Tensor:
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def normals(*shape):
    """make_inputs for one float input of shape (batch, *shape)."""
    return lambda n: [randn(n, *shape, seed=n)]


def with_running_statistics(model):
    """Give every BatchNorm running statistics that are not the initial 0 and 1."""
    rng = np.random.default_rng(1)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer._data[...] = rng.standard_normal(buffer.shape)
        elif name.endswith("running_var"):
            buffer._data[...] = rng.uniform(0.5, 2.0, buffer.shape)
    return model


def import_example(name: str):
    """examples/<name>.py as a module (its folder on sys.path, for its ``_common`` imports)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Lambda(nn.Module):
    """A module whose forward is ``function``; ``modules`` are the layers it calls (registered,
    so that export sees their parameters and eval mode reaches them)."""

    def __init__(self, function, *modules):
        super().__init__()
        self.function = function
        self.layers = nn.ModuleList(modules)

    def forward(self, *inputs):
        return self.function(*inputs)


# ----- layer families --------------------------------------------------------------------------

LAYERS = {
    "linear": (lambda: nn.Linear(5, 3), normals(5)),
    "linear_3d_no_bias": (lambda: nn.Linear(5, 3, bias=False), normals(4, 5)),
    "mlp_activations": (lambda: nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 8),
        nn.GELU(), nn.Linear(8, 8), nn.GELU("tanh"), nn.Tanh(), nn.Sigmoid(), nn.SiLU(),
        nn.Softplus(beta=2.0, threshold=1.0), nn.Dropout(0.5), nn.Softmax(dim=1)), normals(6)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=-1), normals(3, 7)),
    "conv1d_groups_dilation": (lambda: nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2),
                               normals(4, 11)),
    "conv2d_strided": (lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
                       normals(3, 9, 7)),
    "conv2d_same_even_kernel": (lambda: nn.Conv2d(2, 3, 4, padding="same", dilation=1),
                                normals(2, 7, 6)),
    "conv2d_depthwise": (lambda: nn.Conv2d(4, 8, 3, groups=4, bias=False), normals(4, 6, 6)),
    "conv3d": (lambda: nn.Conv3d(2, 3, 3, stride=2, padding=1), normals(2, 5, 6, 7)),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 2, 4, stride=3, padding=1,
                                                    output_padding=2), normals(3, 5)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                    output_padding=1, groups=2, dilation=2),
                         normals(4, 5, 4)),
    "conv_transpose3d": (lambda: nn.ConvTranspose3d(2, 2, 2, stride=2), normals(2, 3, 3, 2)),
    "max_pool1d": (lambda: nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), normals(2, 10)),
    "max_pool2d": (lambda: nn.MaxPool2d(3, stride=2, dilation=2, padding=1), normals(2, 9, 8)),
    "max_pool3d": (lambda: nn.MaxPool3d(2), normals(2, 4, 4, 5)),
    "avg_pool1d": (lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
                   normals(2, 9)),
    "avg_pool2d_ceil": (lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True), normals(2, 8, 8)),
    "avg_pool3d": (lambda: nn.AvgPool3d((1, 2, 2), padding=(0, 1, 1)), normals(2, 3, 4, 4)),
    "adaptive_avg_pool": (lambda: nn.Sequential(nn.AdaptiveAvgPool2d((3, None)),
                                                nn.AdaptiveAvgPool2d(2)), normals(3, 7, 5)),
    "adaptive_avg_pool1d_3d": (lambda: nn.Sequential(
        nn.AdaptiveAvgPool1d(4), nn.Unflatten(2, (1, 2, 2)), nn.AdaptiveAvgPool3d((1, 1, None))),
        normals(3, 5)),
    "batch_norm1d": (lambda: with_running_statistics(nn.BatchNorm1d(4)), normals(4)),
    "batch_norm2d": (lambda: with_running_statistics(nn.BatchNorm2d(3)), normals(3, 4, 5)),
    "batch_norm3d_no_affine": (lambda: with_running_statistics(nn.BatchNorm3d(2, affine=False)),
                               normals(2, 3, 3, 2)),
    "batch_norm_batch_statistics": (lambda: nn.BatchNorm2d(3, track_running_stats=False),
                                    normals(3, 4, 4)),
    "layer_norm": (lambda: nn.LayerNorm((3, 4)), normals(5, 3, 4)),
    "layer_norm_no_affine": (lambda: nn.LayerNorm(6, elementwise_affine=False), normals(6)),
    "group_norm": (lambda: nn.GroupNorm(2, 6), normals(6, 5)),
    "embedding": (lambda: nn.Embedding(10, 4, padding_idx=0),
                  lambda n: [minidl.tensor(np.random.default_rng(n).integers(0, 10, (n, 7)))]),
    "flatten_unflatten": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 12),
                                                nn.Unflatten(1, (3, 4)), nn.Identity()),
                          normals(3, 4)),
    "module_dict": (lambda: _sum_of(nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Tanh()})),
                    normals(3)),
}


def _sum_of(layers):
    """A model adding its two layers' outputs: "a" on all 3 features, "b" on the first 2."""
    return Lambda(lambda x: layers["a"](x.clamp(-1, 1) * 3) + layers["b"](x[:, :2]), layers)


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layer_runs_in_onnx_runtime_at_two_batch_sizes(case, tmp_path):
    build, make_inputs = LAYERS[case]
    minidl.manual_seed(0)
    check_roundtrip(build(), make_inputs, tmp_path)


def test_parameters_are_initializers_named_by_state_dict_keys(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    proto = check_roundtrip(model, normals(1, 4, 4), tmp_path)
    stored = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in proto.graph.initializer}
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert name not in stored  # unused by the forward: not exported
            continue
        np.testing.assert_array_equal(stored[name], value.numpy())
    graph_input = proto.graph.input[0].type.tensor_type.shape.dim
    assert graph_input[0].dim_param == "batch" and graph_input[1].dim_value == 1


def test_every_layer_of_minidl_nn_is_exported_by_a_test():
    """Each public layer (the losses aside: a deployed model has no targets) is named as
    ``nn.<Layer>`` in this file or test_onnx_models.py."""
    text = pathlib.Path(__file__).read_text()
    text += (pathlib.Path(__file__).parent / "test_onnx_models.py").read_text()
    layers = [name for name, value in vars(nn).items() if isinstance(value, type)
              and issubclass(value, nn.Module) and not name.endswith("Loss") and name != "Module"]
    missing = [name for name in layers if f"nn.{name}(" not in text]
    assert not missing, f"layers without an ONNX export test: {missing}"


# Function classes that are not exported, and why (minidl.onnx's docstring lists them too)
NOT_EXPORTED = {
    "AvgPoolGrad": "a gradient", "ConvWeightGrad": "a gradient", "EmbeddingGrad": "a gradient",
    "FusedGrad": "a gradient", "GELUGrad": "a gradient", "IndexPut": "a gradient (of getitem)",
    "MaxPoolGrad": "a gradient", "BinaryCrossEntropy": "a loss", "SoftmaxCrossEntropy": "a loss",
    "SetItem": "an in-place write", "FusedFunction": "a base class",
    "_RecurrentLayer": "a base class",
}


def test_every_function_of_minidl_has_a_converter_or_a_reason():
    from minidl.autograd import Function

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    functions = {f for f in subclasses(Function) if f.__module__.startswith("minidl.")}
    exported = set(minidl.onnx.CONVERTERS)
    assert exported <= functions
    missing = sorted(f.__name__ for f in functions - exported if f.__name__ not in NOT_EXPORTED)
    assert not missing, f"Functions without an ONNX converter: {missing}"


# ----- tensor ops ------------------------------------------------------------------------------

def _indexing(x):  # x (N, 4, 5)
    picked = x[:, [0, 2]]  # (N, 2, 5)
    return (x[:, 1:3, ::2], x[..., None, -1], x[:, -1], picked, x[0, :, [1, 3, 4]],
            x[:, 2, 1:], x[:, ::-1, 1], x[:, None, 1:-1])


def _shapes(x):  # x (N, 4, 5)
    n = x.shape[0]
    a, b = x.split([1, 3], dim=1)
    parts = x.chunk(2, dim=-1)
    joined = minidl.cat([b, a], dim=1).permute(0, 2, 1).reshape(n, -1)
    stacked = minidl.stack([x, x * 2], dim=1).transpose(1, 3).flatten(1, 2)
    grown = x[:, :1].expand(n, 3, 5).unsqueeze(1).squeeze(1)
    padded = nn.functional.pad(x, (1, 2, 0, 1), value=0.5)
    return joined, stacked, grown, padded, parts[0][..., :2] + parts[1], x.roll(2, dims=2), \
        x.reshape(n * 4, 5).reshape(n, 2, 10), x.broadcast_to((2, n, 4, 5))


def _reductions(x):  # x (N, 4, 5)
    values, indices = x.max(dim=1)
    smallest = x.min(dim=2, keepdim=True)
    return (x.sum(), x.mean(dim=(1, 2)), x.sum(dim=-1, keepdim=True), x.var(dim=1),
            x.std(dim=(0, 2), unbiased=False), x.var(dim=0), x.amax(dim=2), x.amin(),
            values, indices, smallest.values, smallest.indices, x.logsumexp(dim=1),
            x.softmax(dim=0), x.log_softmax(dim=2), x.norm(dim=2),
            minidl.linalg.vector_norm(x, 1, 1))


def _math(x):  # x (N, 4, 5)
    positive = x.abs() + 0.5
    bounded = x.clamp(-0.9, 0.9)
    return (x + 1, 2 - x, x * x, x / positive, 1 / positive, positive ** 1.5, 2 ** x,
            minidl.maximum(x, bounded * 0.5), minidl.minimum(x, 0.25), -x, x.exp(), positive.log(),
            positive.sqrt(), positive.rsqrt(), x.erf(), x.expm1(), x.sin(), x.cos(), x.tan(),
            bounded.asin(), bounded.acos(), x.atan(), x.sinh(), x.cosh(), positive.log1p(),
            positive.log2(), positive.log10(), x.reciprocal(), x.sign(), (x * 3).floor(),
            (x * 3).ceil(), (x * 3).round(), (x * 3).trunc(), x.clamp(min=0), x.clamp(max=0.1),
            x.tril(), x.triu(1), x.square(), minidl.where(minidl.tensor(np.tri(4, 5, dtype=bool)),
                                                          x, 0.0), x.to(minidl.float64),
            x.clone(), x.masked_fill(minidl.tensor(np.eye(4, 5, dtype=bool)), -1.0),
            nn.functional.relu(x) @ x.transpose(1, 2), x.matmul(minidl.tensor(np.ones(5, "f"))))


def _integers(ids):  # ids (N, 6) int64
    return ids + 1, ids * ids, (ids.to(minidl.float32) / 2), ids.sum(dim=1), ids[:, ::2]


TENSOR_OPS = {
    "indexing": (_indexing, normals(4, 5)),
    "shapes": (_shapes, normals(4, 5)),
    "reductions": (_reductions, normals(4, 5)),
    "math": (_math, normals(4, 5)),
    "integers": (_integers, lambda n: [minidl.tensor(np.arange(6 * n).reshape(n, 6))]),
}


@pytest.mark.parametrize("case", sorted(TENSOR_OPS))
def test_tensor_ops_run_in_onnx_runtime_at_two_batch_sizes(case, tmp_path):
    function, make_inputs = TENSOR_OPS[case]
    check_roundtrip(Lambda(function), make_inputs, tmp_path)


@pytest.mark.parametrize("opset", [18, 20])
def test_later_opsets_reduce_with_axes_inputs_and_use_gelu(opset, tmp_path):
    model = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.LayerNorm(6))
    proto = check_roundtrip(Lambda(lambda x: (model(x).mean(dim=1), x.amax(dim=0)), model),
                            normals(4), tmp_path, opset_version=opset)
    kinds = {node.op_type for node in proto.graph.node}
    assert ("Gelu" in kinds) == (opset >= 20)
    assert proto.opset_import[0].version == opset


def test_two_dynamic_axes_in_reshapes_and_slices(tmp_path):
    """Batch and length both symbolic: reshapes through (N·L, E) and back, a slice of a buffer to
    the run-time length (the way to positions that follow a dynamic length: arange(T) would be a
    constant), attention over the length."""
    minidl.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    table = nn.Embedding(10, 8)
    positions = minidl.arange(10)

    def forward(x):
        return layer(x + table(positions[:x.shape[1]]))

    model = Lambda(forward, layer, table)
    check_roundtrip(model, lambda n: [randn(n, n + 2, 8, seed=n)], tmp_path,
                    batch_axes=[{0: "batch", 1: "length"}], sizes=(2, 3, 5), atol=1e-4)


def test_symbolic_batch_in_reshapes_is_not_baked_in(tmp_path):
    """A reshape to (N·4, 5) and back to (N, 20), sizes known only at run time."""
    proto = check_roundtrip(Lambda(lambda x: x.reshape(x.shape[0] * 4, 5).reshape(x.shape[0], 20)),
                            normals(4, 5), tmp_path, sizes=(2, 7))
    shapes = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.dims == [2]]
    assert not any(2 in s.tolist() or 8 in s.tolist() for s in shapes), shapes  # no batch inside


@pytest.mark.gpu
def test_a_model_on_the_gpu_exports_what_it_computes_on_the_cpu(tmp_path):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 3))
    x = randn(2, 1, 5, 5)
    (expected,) = minidl_outputs(with_running_statistics(model), [x])
    model.to("cuda")
    minidl.onnx.export(model, x.to("cuda"), tmp_path / "m.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    (got,) = session(tmp_path / "m.onnx").run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ----- errors ----------------------------------------------------------------------------------

def test_an_op_without_a_mapping_is_an_error_naming_it_and_leaves_no_file(tmp_path):
    from minidl.autograd import Function

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            return x ** 3

    path = tmp_path / "model.onnx"
    with pytest.raises(minidl.onnx.UnsupportedOperatorError, match="Cube.*no ONNX mapping"):
        minidl.onnx.export(Lambda(lambda x: Cube.apply(x) + 1), randn(2, 3), path)
    assert list(tmp_path.iterdir()) == []


def _assign(x):
    y = x * 1
    y[:, 0] = 0.0
    return y


@pytest.mark.parametrize("forward, error, message", [
    (lambda x: nn.functional.cross_entropy(x, minidl.tensor(np.array([1, 0]))),
     minidl.onnx.UnsupportedOperatorError, "SoftmaxCrossEntropy"),
    (_assign, minidl.onnx.UnsupportedOperatorError, "SetItem"),
    (lambda x: x.sort(dim=1).values, minidl.onnx.ExportError, "GetItem: indexing with several"),
    (lambda x: nn.functional.dropout(x, 0.5, training=True), minidl.onnx.ExportError,
     "Mul reads a value computed outside"),
    (lambda x: nn.functional.max_pool1d(x[None], 2, return_indices=True)[1].to(minidl.float32),
     minidl.onnx.ExportError, "output of MaxPool that is not exported"),
])
def test_ops_that_cannot_be_exported_are_errors_naming_them(forward, error, message, tmp_path):
    with pytest.raises(error, match=message):
        minidl.onnx.export(Lambda(forward), randn(2, 4), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("returned, kind", [({"logits": 1}, "dict"), (None, "NoneType"),
                                            (3.0, "float")])
def test_a_model_that_returns_a_non_tensor_is_a_type_error(returned, kind, tmp_path):
    with pytest.raises(TypeError, match=f"output.* is a {kind}; ONNX outputs are tensors"):
        minidl.onnx.export(Lambda(lambda x: (x * 2, returned)), randn(2, 3), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_input_that_is_not_a_tensor_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"args\[1\] is a ndarray"):
        minidl.onnx.export(Lambda(lambda x, y: x), (randn(2), np.ones(2)), tmp_path / "m.onnx")


def test_an_unwritable_path_raises_and_leaves_no_file(tmp_path):
    model = nn.Linear(3, 2)
    with pytest.raises(FileNotFoundError):
        minidl.onnx.export(model, randn(2, 3), tmp_path / "missing" / "model.onnx")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not _can_write(locked):  # root writes anywhere: the permission part cannot fail then
            with pytest.raises(PermissionError):
                minidl.onnx.export(model, randn(2, 3), locked / "model.onnx")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"]


def _can_write(folder: pathlib.Path) -> bool:
    try:
        (folder / "probe").touch()
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


def test_an_existing_file_is_replaced_only_by_a_complete_export(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    with pytest.raises(minidl.onnx.UnsupportedOperatorError):
        minidl.onnx.export(Lambda(lambda x: nn.functional.cross_entropy(
            x, minidl.tensor(np.array([0, 1])))), randn(2, 3), path)
    assert path.read_bytes() == b"old"
    minidl.onnx.export(nn.Linear(3, 2), randn(2, 3), path)
    assert onnx.load(str(path)).graph.node


def test_a_value_computed_outside_the_ops_is_an_error_not_a_frozen_constant(tmp_path):
    """A comparison is not a traced op: its mask would be frozen into the file."""
    model = Lambda(lambda x: minidl.where(x > 0, x, x * 0.1))
    x = minidl.tensor(np.array([[1.0, -2.0, 3.0]], dtype=np.float32))  # shifted: another mask
    with pytest.raises(minidl.onnx.ExportError, match="Where reads a value computed outside"):
        minidl.onnx.export(model, x, tmp_path / "m.onnx")


def test_control_flow_on_input_values_is_an_error(tmp_path):
    model = Lambda(lambda x: x.exp() if float(x.sum().item()) > 0 else x.tanh())
    x = minidl.tensor(np.array([[1.0, 2.0, -0.5]], dtype=np.float32))  # shifted: the same sum
    minidl.onnx.export(model, x, tmp_path / "same.onnx")  # the same ops on both runs: fine
    with pytest.raises(minidl.onnx.ExportError, match="different ops"):
        minidl.onnx.export(Lambda(lambda x: x.exp() if float(x[0, 0].item()) > 0 else x.tanh()),
                           x, tmp_path / "m.onnx")


def test_in_place_writes_are_an_error_when_the_new_value_is_read(tmp_path):
    def forward(x, read_after: bool):
        y = x * 2
        z = y * 3
        y.add_(1)
        return y * 3 if read_after else z

    minidl.onnx.export(Lambda(lambda x: forward(x, False)), randn(2, 3), tmp_path / "fine.onnx")
    with pytest.raises(minidl.onnx.ExportError, match="written in place"):
        minidl.onnx.export(Lambda(lambda x: forward(x, True)), randn(2, 3), tmp_path / "m.onnx")


@pytest.mark.parametrize("kwargs, message", [
    (dict(dynamic_axes={"images": {0: "batch"}}), "neither input nor output names"),
    (dict(dynamic_axes={"input": {3: "batch"}}), "names axis 3, but input has 2 dims"),
    (dict(input_names=["a", "b"]), "expected 1 distinct input_names"),
    (dict(opset_version=12), "opset_version must be an int in"),
    (dict(output_names=["weight"]), "are parameter names"),
])
def test_bad_arguments_are_value_errors(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        minidl.onnx.export(nn.Linear(3, 2), randn(2, 3), tmp_path / "m.onnx", **kwargs)


def test_a_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "minidl\[onnx\]"'):
        minidl.onnx.export(nn.Linear(3, 2), randn(2, 3), tmp_path / "m.onnx")


def test_training_modes_are_restored_and_a_file_object_is_written(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model[1].eval()
    with open(tmp_path / "m.onnx", "wb") as file:
        minidl.onnx.export(model, randn(2, 3), file)
    assert model.training and not model[1].training and model[0].training
    session(tmp_path / "m.onnx")


# ----- the deployment example ------------------------------------------------------------------

@pytest.mark.slow
def test_deploy_onnx_example_quick(tmp_path, capsys):
    result = import_example("deploy_onnx").main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "digits_cnn.onnx").exists()
    assert result["losses"][-1] < result["losses"][0]
    assert result["test_accuracy"] > 0.3  # learned something, so agreement is not trivial
    assert result["agreement"] == 1.0 and result["max_abs_difference"] < 1e-4
    assert result["minidl_ms_per_image"] > 0 and result["onnxruntime_ms_per_image"] > 0
    assert "InferenceSession" in capsys.readouterr().out
