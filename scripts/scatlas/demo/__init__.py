"""The offline demo: a generated world of GEO/SRA/ENA/ArrayExpress studies and a loopback
mirror that serves it at the real services' URL paths.

- :func:`scatlas.demo.world.generate_world` writes the world (deterministic per seed).
- :class:`scatlas.demo.mirror.MirrorServer` serves it (with injectable faults).
"""
