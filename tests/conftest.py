"""Shared test settings: hypothesis without deadlines (JAX compiles on first use), bounded and
derandomized examples (a CI run and a local run see the same cases)."""

from hypothesis import settings

settings.register_profile("qatlib", deadline=None, max_examples=50, derandomize=True)  # same examples every run
settings.load_profile("qatlib")
