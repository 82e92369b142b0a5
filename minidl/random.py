"""Seeded random numbers: one default generator for the CPU and, lazily, one for CUDA."""
from __future__ import annotations

import numpy as np



class Generator:
    """A seedable source of random arrays on any device (PyTorch's ``torch.Generator``).

    The CPU stream is NumPy's PCG64; the CUDA stream is CuPy's generator, seeded from the same seed.
    """

    def __init__(self, seed: int = 0):
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        self.seed = int(seed)
        self.cpu = np.random.Generator(np.random.PCG64(self.seed))
        self._cuda = None
        return self

    def for_module(self, xp):
        """The generator that draws arrays of ``xp`` (numpy or cupy)."""
        if xp is np:
            return self.cpu
        if self._cuda is None:
            self._cuda = xp.random.Generator(xp.random.XORWOW(self.seed))
        return self._cuda

    def get_state(self) -> dict:
        """The CPU stream's state as plain JSON-serialisable values (for checkpoints)."""
        state = self.cpu.bit_generator.state
        return {"seed": self.seed, "bit_generator": state["bit_generator"],
                "state": {k: int(v) for k, v in state["state"].items()},
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}

    def set_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.cpu.bit_generator.state = {
            "bit_generator": state["bit_generator"],
            "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator on every device."""
    return default_generator.manual_seed(seed)


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def generator_for(xp, generator: Generator | None = None):
    """The array generator to draw ``xp`` arrays from (the default one unless given)."""
    return (generator or default_generator).for_module(xp)
