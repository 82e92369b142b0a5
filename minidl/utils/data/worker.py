"""Worker processes for ``DataLoader(num_workers > 0)`` (PyTorch's protocol, in order).

The main process hands out the index batches round-robin on one task queue per worker, at most
``prefetch_factor * num_workers`` ahead of the batch it yields next; each worker fetches whole
batches and sends them back on its own pipe, and the main process yields them in the sampler's
order. A worker's exception is raised again in the main process with the worker's traceback; a
worker that dies, or a batch later than ``timeout``, is a RuntimeError, never a hang.

Each epoch every worker is seeded with ``seed = base_seed + id``: Python's ``random``, minidl's
global generator, and NumPy's global RNG (from ``SeedSequence([id, base_seed])``).
"""
from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import random as python_random
import signal
import sys
import traceback

import numpy as np

from minidl import random
from minidl.utils.data.fetch import Fetcher, StreamEnd

_POLL_SECONDS = 0.5  # how often an idle worker checks that the main process is still alive
_JOIN_SECONDS = 1.0  # how long a stopping worker may finish its batch before it is terminated


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Which DataLoader worker this process is: ``id`` in ``range(num_workers)``, the ``seed``
    it was given this epoch, and its own copy of the loader's ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This process's :class:`WorkerInfo` in a DataLoader worker; None in the main process."""
    return _worker_info


@dataclasses.dataclass(frozen=True)
class _Epoch:
    """Start an epoch: seed from ``base_seed`` and restart the fetcher; answered with itself."""

    base_seed: int


@dataclasses.dataclass(frozen=True)
class _Exhausted:
    """The worker's copy of an IterableDataset has no more batches this epoch."""

    worker_id: int


class _WorkerError:
    """The exception being handled in worker ``worker_id``, to raise again in the main process."""

    def __init__(self, worker_id: int):
        error_type = sys.exc_info()[0]
        self.message = (f"Caught {error_type.__name__} in DataLoader worker process {worker_id}.\n"
                        f"Original {traceback.format_exc()}")
        if issubclass(error_type, KeyError):  # str(KeyError(text)) would be repr(text)
            self.message = _VerbatimMessage(self.message)
        self.error_type = error_type if _picklable(error_type) else RuntimeError

    def reraise(self):
        try:
            error = self.error_type(self.message)
        except Exception:  # an exception type whose constructor takes other arguments
            raise RuntimeError(self.message) from None
        raise error


class _VerbatimMessage(str):
    """A message whose repr is itself, so that a KeyError shows its lines, not escapes."""

    def __repr__(self) -> str:
        return self


def _picklable(value) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _worker_loop(worker_id: int, num_workers: int, fetcher: Fetcher, init_fn, tasks, results):
    """One worker: at each epoch reseed and restart; fetch each task's batch and send it back,
    until told to stop (None) or the main process is gone."""
    global _worker_info
    parent, started, failure, exhausted = os.getppid(), False, None, False
    try:
        while True:
            try:
                task = tasks.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if task is None:
                return
            if isinstance(task, _Epoch):
                seed = task.base_seed + worker_id
                _seed_everything(seed, task.base_seed, worker_id)
                _worker_info = WorkerInfo(worker_id, num_workers, seed, fetcher.dataset)
                failure, exhausted = None, False
                try:
                    if init_fn is not None and not started:
                        init_fn(worker_id)
                    fetcher.start()
                except Exception:
                    failure = _WorkerError(worker_id)
                started = True
                results.send((task, None))
                continue
            if exhausted:  # tasks handed out before the main process learnt it: no answer
                continue
            number, index = task
            try:
                data = failure or fetcher(index)
            except StreamEnd:
                data, exhausted = _Exhausted(worker_id), True
            except Exception:
                data = _WorkerError(worker_id)
            _send(results, number, data, worker_id)
    except (KeyboardInterrupt, BrokenPipeError, EOFError):
        return  # Ctrl-C is the main process's to handle; a closed pipe means it stopped us


def _seed_everything(seed: int, base_seed: int, worker_id: int) -> None:
    python_random.seed(seed)
    random.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))


def _send(results, number: int, data, worker_id: int) -> None:
    try:
        results.send((number, data))  # pickles the whole message before writing any of it
    except (pickle.PicklingError, TypeError, AttributeError):
        results.send((number, _WorkerError(worker_id)))


class WorkerPool:
    """``loader.num_workers`` processes that fetch batches with ``fetcher`` (a copy each)."""

    def __init__(self, loader, fetcher: Fetcher):
        context = loader.multiprocessing_context or multiprocessing.get_context()
        self.timeout = loader.timeout
        self.prefetch = loader.prefetch_factor * loader.num_workers
        self.tasks, self.readers, self.processes = [], [], []
        self.epochs = 0  # epochs begun: only the latest one's iterator may run
        try:
            for worker_id in range(loader.num_workers):
                tasks = context.Queue()
                tasks.cancel_join_thread()  # exiting never waits to hand tasks to a dead worker
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker_loop, name=f"DataLoader worker {worker_id}", daemon=True,
                    args=(worker_id, loader.num_workers, fetcher, loader.worker_init_fn, tasks,
                          writer))
                self.tasks.append(tasks)
                self.readers.append(reader)
                self.processes.append(process)
                process.start()
                writer.close()  # the worker holds the writing end now
        except BaseException:
            self.shutdown()
            raise

    def batches(self, indices, base_seed: int):
        """Yield the batches of ``indices`` (what the index sampler yields) in order."""
        self.epochs += 1
        epoch, workers = self.epochs, len(self.processes)
        self._start(base_seed)
        indices, turn = iter(indices), itertools.cycle(range(workers))
        active, owner, arrived = [True] * workers, {}, {}
        handed = taken = 0  # tasks handed out / yielded (or skipped)

        def hand_out():
            nonlocal handed
            index = next(indices, StreamEnd)
            worker = next((w for w in itertools.islice(turn, workers) if active[w]), None)
            if index is not StreamEnd and worker is not None:
                self.tasks[worker].put((handed, index))
                owner[handed], handed = worker, handed + 1

        for _ in range(self.prefetch):
            hand_out()
        while taken < handed:
            if epoch != self.epochs:
                raise RuntimeError("DataLoader: this epoch's iterator was superseded by a newer "
                                   "iter() over the same persistent workers")
            if taken not in arrived and active[owner[taken]]:
                worker, (number, data) = self._receive()
                if isinstance(data, _Exhausted):
                    active[worker] = False
                    hand_out()
                else:
                    arrived[number] = data
                continue
            data = arrived.pop(taken, _Exhausted)  # none: its worker's stream ended before it
            del owner[taken]
            taken += 1
            if data is _Exhausted:
                continue
            hand_out()
            if isinstance(data, _WorkerError):
                data.reraise()
            yield data

    def _start(self, base_seed: int) -> None:
        """Begin an epoch on every worker; what they still send of an abandoned one is dropped."""
        for tasks in self.tasks:
            tasks.put(_Epoch(base_seed))
        waiting = set(range(len(self.processes)))
        while waiting:
            worker, (task, _) = self._receive()
            if isinstance(task, _Epoch):
                waiting.discard(worker)

    def _receive(self) -> tuple:
        """(worker id, message) of the next message any worker sends."""
        sentinels = [process.sentinel for process in self.processes]
        ready = multiprocessing.connection.wait(self.readers + sentinels, self.timeout or None)
        if not ready:
            raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds")
        dead = [p for p in self.processes if p.sentinel in ready]
        for worker, reader in enumerate(self.readers):
            if reader in ready:
                try:
                    return worker, reader.recv()
                except EOFError:  # its end of the pipe closed: it exited
                    dead.append(self.processes[worker])
        dead = list(dict.fromkeys(dead))  # a worker can be both: its pipe closed and it ended
        for process in dead:
            process.join(_JOIN_SECONDS)
        raise RuntimeError("DataLoader worker (pid(s) " + ", ".join(str(p.pid) for p in dead)
                           + ") exited unexpectedly: "
                           + ", ".join(_exit_reason(p.exitcode) for p in dead))

    def shutdown(self) -> None:
        """Stop the workers: each finishes the batch at hand; one that does not is terminated."""
        for tasks, process in zip(self.tasks, self.processes):
            if process.is_alive():
                tasks.put(None)
        for reader in self.readers:  # a worker blocked sending a batch gets a BrokenPipeError
            reader.close()
        for process in self.processes:
            if process.pid is not None:
                process.join(_JOIN_SECONDS)
                if process.is_alive():
                    process.terminate()
                    process.join()
        for tasks in self.tasks:
            tasks.close()
        self.tasks, self.readers, self.processes = [], [], []

    def __del__(self):
        if self.processes:
            self.shutdown()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        return f"killed by signal {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
