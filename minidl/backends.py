"""``minidl.backends``: the switches real PyTorch scripts set (TF32, cuDNN benchmark, MPS).

They exist so such scripts run unchanged. minidl has no TF32 or cuDNN path and no Apple GPU, so
each flag is stored and does nothing, and ``mps.is_available()`` is False.
"""
from __future__ import annotations

from types import SimpleNamespace

cuda = SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False,
                                              allow_fp16_reduced_precision_reduction=True))
cudnn = SimpleNamespace(allow_tf32=True, benchmark=False, deterministic=False, enabled=True)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)
