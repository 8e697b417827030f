"""Explanations with Captum: word attributions for text models; Grad-CAM, IG and occlusion for images.

* :mod:`dlbook.interpret.text`: :func:`word_attributions` (Layer Integrated Gradients
  on the embedding), :func:`explain_text` and :class:`WordAttribution`;
* :mod:`dlbook.interpret.image`: :func:`~dlbook.interpret.image.saliency`, :func:`grad_cam`, :func:`integrated_gradients` (optionally with SmoothGrad),
  :func:`occlusion`, maps ``(B, H, W)`` of the input's size;
* :mod:`dlbook.interpret.sanity`: :func:`cascading_randomization`, the model-parameter
  randomisation test of Adebayo et al. (2018) that checks an explanation depends on the model;
* :mod:`dlbook.interpret.features`: :func:`layer_activations`, a layer's outputs over a loader
  (feature maps, penultimate features for t-SNE).

One convention: every function takes the model, its inputs and a ``target`` class
(``None``: the predicted class), runs the model in eval mode (restored afterwards),
explains the score ``class_scores`` names, and returns plain tensors on the CPU.
The drawing (coloured words, overlays) is in :mod:`dlbook.viz`.

Example:
    >>> import torch
    >>> class_scores(torch.tensor([[0.0, 0.0], [5.0, 0.0]]), "prob")[:, 1]   # the score to explain
    tensor([0.5000, 0.0067])
"""

from dlbook.interpret._common import SCORES, class_scores
from dlbook.interpret.features import layer_activations
from dlbook.interpret.image import grad_cam, integrated_gradients, occlusion, saliency
from dlbook.interpret.sanity import RandomizationResult, cascading_randomization, randomizable_layers
from dlbook.interpret.text import WordAttribution, explain_text, word_attributions

__all__ = ["SCORES", "class_scores", "word_attributions", "WordAttribution", "explain_text", "grad_cam",
           "integrated_gradients", "occlusion", "saliency", "RandomizationResult", "cascading_randomization", "randomizable_layers",
           "layer_activations"]
