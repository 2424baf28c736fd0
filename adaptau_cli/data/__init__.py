"""Data layer: readers, registry and downloads, cleaning and splits, the parquet store."""

from adaptau_cli.data.dataset import Interactions, PreparedDataset

__all__ = ["Interactions", "PreparedDataset"]
