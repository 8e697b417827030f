"""Training history: one record per epoch, easy to plot and tabulate."""

from __future__ import annotations


class History:
    """A list of per-epoch records (dicts) with helpers to read and plot them.

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
        >>> h["train_loss"]
        [0.9, 0.5]
    """

    def __init__(self, records: list[dict] | None = None):
        self.records = records if records is not None else []

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        if not self.records or key not in self.records[-1]:
            known = sorted(self.records[-1]) if self.records else []
            raise KeyError(f"no {key!r} in the history; it has {known}")
        return [r.get(key) for r in self.records]

    def best(self, key: str, mode: str = "max") -> dict:
        """The record with the best value of ``key``."""
        pick = max if mode == "max" else min
        return pick(self.records, key=lambda r: r[key])

    def to_frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch")

    def plot(self, metrics: tuple[str, ...] | None = None, axes=None, title: str | None = None):
        """Loss curves on the left, other metrics on the right; returns the figure."""
        from dlbook.viz import plot_history

        return plot_history(self, metrics=metrics, axes=axes, title=title)
