"""Deployment: ``minidl.onnx.export`` writes a model as an ONNX file that ONNX Runtime serves.

    import minidl.onnx
    minidl.onnx.export(model, images, "model.onnx", input_names=["images"],
                       output_names=["logits"], dynamic_axes={"images": {0: "batch"}})

    import onnxruntime                      # pip install "minidl[onnx]"
    session = onnxruntime.InferenceSession("model.onnx")
    (logits,) = session.run(None, {"images": batch_as_float32_numpy})

How it works: the model runs in eval mode under ``minidl.autograd.tracing``, which reports every
op (every op is a ``Function``); each op's converter (one file per family: ``elementwise``,
``reductions``, ``shapes``, ``layers``, ``recurrent``) writes its ONNX nodes; parameters and
buffers become initializers named by their state_dict keys; tensors that no op made are inputs
or constants. A second run on resized, shifted inputs (``trace.py``) separates the sizes that
follow a dynamic axis from constants (``values.py`` then writes them as 0 / -1 entries or Shape
reads) and catches values computed outside the ops, which would otherwise be frozen into the file.
Opsets 17 (the default: LayerNormalization's first) and later: from 18 the reductions take their
axes as an input, from 20 GELU is ONNX's Gelu.

Supported ops (Function classes) and what they become:

- arithmetic and math: Add Sub Mul Div Pow Maximum Minimum Where Neg Exp Log Sqrt Rsqrt Abs Erf
  Expm1 Reciprocal, Smooth (sin cos tan asin acos atan sinh cosh log1p log2 log10),
  PiecewiseConstant (sign floor ceil round trunc), ToDtype (Cast), Clone and ToDevice (Identity);
- activations: ReLU LeakyReLU Sigmoid Tanh GELU (exact and tanh) SiLU Softplus Clamp (Clip);
- reductions: Sum Mean Var Std AMax (amax, amin) MaxAlongDim (max/min along a dim, with indices)
  LogSumExp Softmax LogSoftmax;
- shapes and indexing: Reshape Permute Expand Cat Stack Split Pad Roll Triangle (Trilu) and
  GetItem (ints, slices, None, Ellipsis and one integer index array);
- layers: Linear (Gemm), MatMul, ConvNd (Conv1d/2d/3d with stride, padding including "same",
  dilation, groups), ConvTransposeNd, MaxPool and AvgPool (1-3 d, ceil_mode, count_include_pad),
  LayerNorm (LayerNormalization), BatchNorm with batch statistics, Embedding (Gather),
  ScaledDotProductAttention and BlockedAttention (bool and float masks, causal),
  RNNLayer/LSTMLayer/GRULayer (ONNX's RNN, LSTM and GRU ops, PyTorch's gate order mapped).

Composed layers arrive as these ops: BatchNorm in eval mode, GroupNorm, adaptive average pooling,
Flatten/Unflatten, Dropout in eval mode (no op at all), MultiheadAttention and the Transformer
layers, bidirectional and stacked recurrent layers, and the RNN/LSTM/GRU cells.

Not supported (each raises an error naming it): the gradient ops (ConvWeightGrad, MaxPoolGrad,
AvgPoolGrad, GELUGrad, IndexPut, EmbeddingGrad, FusedGrad: export records a forward pass), the
losses (BinaryCrossEntropy, SoftmaxCrossEntropy: a deployed model has no targets), SetItem and
in-place ops (``x[i] = v``, ``add_``: a graph has no memory to write into), dropout in training
mode (random), MaxPool's indices output, and indexing with several index arrays or a bool mask
(what sort and topk do). Comparisons (``x > 0``, ``ids == pad``) and argmax are not ops in minidl,
so a mask made from the inputs by them is not traced; export detects it and says so.
"""
from minidl.onnx.exporter import CONVERTERS, export
from minidl.onnx.graph import ExportError, UnsupportedOperatorError

__all__ = ["export", "ExportError", "UnsupportedOperatorError", "CONVERTERS"]
