"""Optimizers and learning-rate schedulers (as torch.optim)."""
