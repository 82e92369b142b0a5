"""Dataset loaders that work offline first."""
