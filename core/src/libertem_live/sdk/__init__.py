"""The pieces behind :mod:`libertem_live.driver`.

Drivers import :mod:`libertem_live.driver` only; the modules here are the
core's own and may change between releases without notice.
"""
