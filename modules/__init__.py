"""The zoo of context modules, installed as ``hambench.modules``.

Importing this package registers every built-in module. One flat file per family, as in timm.
"""

from hambench.modules import ham  # noqa: F401  (Hamburger: NMF, CD, VQ)
