"""The suites shipped with hambench (``*.yaml``, package data); ``hambench suites list`` shows them."""
