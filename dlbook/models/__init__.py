"""Models, one family per file: ``lenet``, ``vgg``, ``rnn``, ``transformer``.

Import from the family's module, e.g. ``from dlbook.models.lenet import LeNet5``.
"""
