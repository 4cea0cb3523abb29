"""``python -m lcmbench COMMAND ...``: the same as the ``lcmbench`` console script."""
from lcmbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
