"""Whole segmentation models: the VAN backbone (``van``), mmseg segmentors with a context head
(``segmentor``) and the named presets that reproduce published models (``presets``).

Nothing is imported here: ``import hambench.models.van`` registers ``VAN`` in mmseg's ``MODELS``.
"""
