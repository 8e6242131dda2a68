"""Datasets: the embedded digits, IDX files (MNIST, Fashion-MNIST), SVHN's .mat files, CIFAR."""

from robbench.data.datasets import DATASETS, DataNotFoundError, Dataset, load_dataset

__all__ = ["DATASETS", "DataNotFoundError", "Dataset", "load_dataset"]
