"""Hot-path kernels: for each, a NumPy reference, a Numba CPU version and a CuPy GPU version.

Installed as ``minidl.kernels``; this package never imports ``minidl``. ``dispatch.py`` is the only
device plumbing: ``pick`` (which version runs), ``array_module``, ``cupy()`` (the one lazy CuPy
import), ``cuda_kernel`` (a memoised RawKernel builder) and ``launch``/``launch_rows``.
``windows.py`` holds the sliding-window geometry that im2col, pooling and their ops share.

One kernel, three versions, side by side (GELU forward, ``activations.py``)::

    def gelu_forward(x, approximate="none"):  # the dispatcher: which one runs where
        implementation = pick(x, gelu_forward_reference, gelu_forward_numba, gelu_forward_cupy)
        return implementation(x, approximate)

    gelu_forward_reference   array code, the specification (NumPy or CuPy arrays)
    gelu_forward_numba       _gelu_forward_loop: a plain loop, @njit(cache=True, parallel=True)
    gelu_forward_cupy        CUDA_SOURCES["minidl_gelu_forward"], launched by dispatch.launch

Where a version would be the reference again, the dispatcher says so: ``pick(x, reference,
gpu=...)`` runs the reference on CPU (im2col, average pooling: measured faster or no slower, see
benchmarks/results/kernels.md), ``pick(x, reference, cpu)`` runs its array code on CuPy (batch
norm). ``MINIDL_KERNELS=reference`` runs every reference.

How to add a kernel ``foo`` to ``kernels/<family>.py``:

1. ``foo_reference(x)``: array code with ``xp = array_module(x)``; it defines the result.
2. ``foo_numba(x)``: allocate the output, call ``_foo_loop`` (``@njit(cache=True)``, ``prange``
   on the outer loop if it pays: time it), check what the loop indexes by before it runs.
3. ``foo_cupy(x)``: ``CUDA_SOURCES["minidl_foo"]`` written over an element type ``T``, run by
   ``launch(cuda_kernel(source, "minidl_foo", x.dtype), size, *args)``.
4. ``foo(x)``: ``return pick(x, foo_reference, foo_numba, foo_cupy)(x)``, the only entry the
   ops call; drop a version that does not pay (``cpu=None``/``gpu=None``) and write why.
5. Test in ``tests/test_kernels_<family>.py``: ``foo_numba`` against ``foo_reference`` on
   hypothesis-drawn shapes and dtypes (float32, float64, empty inputs), a gradcheck of the op
   that uses it with ``kernel_mode`` (both modes), a ``@pytest.mark.gpu`` test of ``foo_cupy``;
   ``tests/test_kernels_cuda.py`` compiles the new source with nvcc by itself. Add a row to
   ``benchmarks/kernels.py`` and run ``python -m benchmarks.kernels --only foo``.

Threads: Numba's parallel loops use the ``workqueue`` layer unless ``NUMBA_THREADING_LAYER`` says
otherwise. With the OpenMP layer, a parallel kernel run right after a BLAS call was measured 90x
slower on 2 cores (OpenBLAS's spinning threads and OpenMP's fighting for the cores). The price:
a workqueue launch costs about 30 µs here (OpenMP's 2-13 µs). That is one reason the recurrent
cells and the scatter-add are serial, and cross-entropy goes parallel only above 32k logits.

Workqueue is not thread-safe either: two Python threads in parallel kernels at once abort the
interpreter. So ``dispatch.pick`` runs every compiled CPU kernel under one lock (0.6 µs a
call). OpenMP with ``OMP_WAIT_POLICY=passive`` is thread-safe and spares BLAS too (13 µs a launch),
but GNU OpenMP terminates a forked child that runs a parallel kernel (multiprocessing's default).
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from .dispatch import mode, use  # noqa: E402

__all__ = ["mode", "use"]
