"""``minidl.data``: the older name of :mod:`minidl.utils.data` (``torch.utils.data``'s path).

Both names give the same objects (``minidl.data.DataLoader is minidl.utils.data.DataLoader``).
"""
from minidl.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset,
                               DistributedSampler, IterableDataset, RandomSampler, Sampler,
                               SequentialSampler, Subset, SubsetRandomSampler, TensorDataset,
                               WeightedRandomSampler, WorkerInfo, default_collate, default_convert,
                               get_worker_info, random_split)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "DistributedSampler", "IterableDataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset",
           "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
