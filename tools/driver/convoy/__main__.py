"""`python -m convoy`: the same as the `convoy` command."""

from convoy.main import run

if __name__ == "__main__":
    run()
