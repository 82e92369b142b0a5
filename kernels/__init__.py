"""Hot-path kernels: for each, a NumPy reference, a Numba CPU version and a CuPy GPU version.

Installed as ``minidl.kernels``; this package never imports ``minidl``. Each module starts with a
short dispatcher that picks the implementation from the array's backend and ``MINIDL_KERNELS``.

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
