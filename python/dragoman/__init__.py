"""dragoman: one program that turns a Python web application into a production HTTP service.

The engine is Rust (``dragoman._native``); this package is only its entry point.
"""

from dragoman._native import __version__

__all__ = ["__version__"]
