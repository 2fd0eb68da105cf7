"""``python -m qatlib run <chapter> --preset NAME [-p NAME VALUE ...]`` (see :mod:`qatlib.cli`)."""

import os

from qatlib.cli import deterministic_xla_flags, main

if __name__ == "__main__":
    # before any JAX computation: XLA reads its flags when the first one compiles
    os.environ["XLA_FLAGS"] = deterministic_xla_flags(os.environ.get("XLA_FLAGS", ""))
    raise SystemExit(main())
