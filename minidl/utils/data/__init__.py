"""Datasets, samplers and the DataLoader, as ``torch.utils.data`` (same names and module paths).

``dataset``: Dataset, IterableDataset, TensorDataset, ConcatDataset, ChainDataset, Subset,
random_split; ``sampler``: the samplers; ``collate``: default_collate, default_convert;
``dataloader``: DataLoader; ``worker``: the worker processes and get_worker_info; ``fetch``: how
a batch is built from what the sampler yields; ``distributed``: DistributedSampler.
"""
from minidl.utils.data.collate import default_collate, default_convert
from minidl.utils.data.dataloader import DataLoader
from minidl.utils.data.distributed import DistributedSampler
from minidl.utils.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset,
                                       Subset, TensorDataset, random_split)
from minidl.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                       SubsetRandomSampler, WeightedRandomSampler)
from minidl.utils.data.worker import WorkerInfo, get_worker_info
