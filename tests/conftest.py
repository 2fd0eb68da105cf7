"""Shared test settings: hypothesis without deadlines (JAX compiles on first use), bounded examples."""

from hypothesis import settings

settings.register_profile("qatlib", deadline=None, max_examples=50)
settings.load_profile("qatlib")
