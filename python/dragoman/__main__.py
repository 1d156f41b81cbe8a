"""Entry point for ``dragoman`` and ``python -m dragoman``."""

import sys


def main() -> None:
    from dragoman import _native

    sys.exit(_native.run(sys.argv))


if __name__ == "__main__":
    main()
