"""Built-in demo data: a synthetic shop catalog and a simulator of shoppers with known tastes.

Used by ``streamrec demo`` and by the integration tests; everything is deterministic
given a seed and nothing is generated at import time.
"""
