"""`python -m csvgen ...`: the same as the `csvgen` command (`python -m csvgen serve` runs the
service)."""

from csvgen.cli import main

if __name__ == "__main__":
    main()
