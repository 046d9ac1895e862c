"""``python -m radiopath`` (also what ``torchrun -m radiopath`` runs)."""

from radiopath.cli import main

if __name__ == "__main__":
    main()
