"""Training recipes: every choice behind a chapter's headline run, in one place.

A recipe is a frozen dataclass that builds the model, optimizer, schedule, loss and
augmentation for one task, so the chapter that teaches it, the benchmarks that time it and
the GPU check all train the same thing.

Modules: ``cifar10`` (chapter 4.1's VGG-11-BN recipes, :data:`~dlbook.recipes.cifar10.FIRST`,
:data:`~dlbook.recipes.cifar10.PAGE` and :data:`~dlbook.recipes.cifar10.FAST`, and the time budget's epoch count).
"""
