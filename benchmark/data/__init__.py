"""Datasets: the embedded digits, IDX files (MNIST, Fashion-MNIST) and SVHN's .mat files."""

from robbench.data.datasets import DATASETS, DataNotFoundError, Dataset, load_dataset

__all__ = ["DATASETS", "DataNotFoundError", "Dataset", "load_dataset"]
