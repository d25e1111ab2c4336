"""The runtime: controller, task transports, virtual clock, patches.

Nothing in here is public API; ``races/__init__.py`` re-exports what users call.
The parts talk through the plain data types in :mod:`races._core.step`.
"""
