"""Training tasks: segmentation (``seg``, with Ray Train data-parallel in ``ddp``) and GAN (``gan``).

Each task is a config dataclass and one function, ``train_<task>(cfg, callback=None) -> dict``;
the CLI and the suite's trials call the same function.
"""
