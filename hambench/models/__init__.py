"""Whole segmentation models: the VAN backbone (``van``), hambench's mmseg decode heads that hold
any context module (``heads``), mmseg segmentors with such a head (``segmentor``), the named presets
that reproduce published models (``presets``) and their cost beside the published figures
(``cost``); ``registration`` fills mmseg's registry with all of them.

Nothing is imported here: ``import hambench.models.van`` registers ``VAN`` in mmseg's ``MODELS``,
``import hambench.models.heads`` registers ``ContextHead`` and ``LightContextHead``.
"""
