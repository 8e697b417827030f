"""dlbook: the package behind the book *Deep learning: engineering practice*.

Chapters import it; nothing here is generated from notebooks. Importing it has
no side effects: no downloads, no prints, no global seeds.

Sub-packages and modules::

    budget      the ``DLBOOK_BUDGET`` switch (``full`` for readers, ``smoke`` for CI)
    data        datasets (offline copy, cache, verified download), transforms, splits, text and token batches
    recipes     every choice behind a chapter's headline run (chapter 4.1's VGG-11 recipes)
    models      lenet, vgg, rnn, rnn_classifier, transformer, transformer_classifier, pretrained
    train       Trainer, callbacks, checkpoints, inference (``predict``, ``eval_mode``), optimiser groups,
                schedules, precision and device
    interpret   Captum attributions: ``interpret.text`` (words) and ``interpret.image`` (pixels)
    behaviour   behavioural tests of text classifiers and the ``TextPredictor`` they call
    metrics     accuracy, precision, recall, F1, confusion matrix, ROC and PR curves, AUC, average precision
    calibration expected calibration error (equal-width bins), reliability bins, temperature scaling
    viz         curves, image grids, confusion matrices, attribution overlays and word highlights
    widgets     interactive explorers for the rendered book
    timing      wall time, latency percentiles and throughput, for chapters and benchmarks alike
    files       the one atomic write, and checked files (checkpoints, caches) that carry their SHA-256
    notebook    the setup cell and the provenance a notebook records
"""

__version__ = "0.1.0"
