"""``python -m qatlib run <chapter> --preset NAME [-p NAME VALUE ...]`` (see :mod:`qatlib.cli`)."""

from qatlib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
