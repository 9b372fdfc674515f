"""``python -m p4d.train ...`` / ``torchrun --nproc-per-node K -m p4d.train ...``: see :mod:`p4d.train.cli`."""

from p4d.train.cli import main

if __name__ == "__main__":
    main()
