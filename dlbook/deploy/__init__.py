"""Deployment: export a trained model, quantise it, serve it over HTTP, in a container or as a function.

The serving side needs no torch: :mod:`runtime`, :mod:`textprep`, :mod:`serve`, :mod:`serverless`,
:mod:`process` and :mod:`loadtest` import only NumPy, Pillow, ONNX Runtime, FastAPI, prometheus-client
and httpx, so the container image carries none of PyTorch's ~700 MB. This file imports nothing, so
``import dlbook.deploy.serve`` stays torch-free (a test checks it with torch blocked).

Modules::

    export      torch side: ``torch.export`` and ONNX export, each checked against eager (max abs error);
                ``PaddingFreeRNN`` (a BiLSTM classifier without packing, for one sentence at a time);
                ``save_text_spec`` (the vocabulary and the tokeniser's rules as JSON)
    quantize    ONNX Runtime int8: dynamic (Linear/LSTM) and static with calibration data (CNN)
    textprep    the torch-free tokeniser the service uses, read from the JSON ``save_text_spec`` wrote
    runtime     a model bundle (ONNX file + ``meta.json``), input checks, and the one ``Predictor``
                that the HTTP service and the serverless handler share
    serve       the FastAPI app (``create_app``) and its command line (``python -m dlbook.deploy.serve``)
    serverless  a function-style ``handler(event, context)`` on the same ``Predictor``; cold start measured
    process     start the service as a subprocess on a free loopback port and wait until it is ready
    loadtest    an asyncio httpx load generator and the ``/metrics`` cross-check
    container   build and run the service's container with podman (the ``Containerfile`` next to it)
"""
