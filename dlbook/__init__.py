"""dlbook: the package behind the book *Deep learning: engineering practice*.

Chapters import it; nothing here is generated from notebooks. Importing it has
no side effects: no downloads, no prints, no global seeds.

Sub-packages:
    budget      the ``DLBOOK_BUDGET`` switch (``full`` for readers, ``smoke`` for CI)
    data        datasets (offline copy, cache, download, checksum), transforms, text
    models      lenet, vgg, rnn, transformer: one model family per file
    train       Trainer, callbacks, precision and device
    metrics     accuracy, precision, recall, F1, confusion matrix
    viz         curves, image grids, confusion matrices
    notebook    the setup cell and the provenance a notebook records
"""

__version__ = "0.1.0"
