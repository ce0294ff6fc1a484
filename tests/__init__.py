"""convoy's test suite (pytest): one folder per module of the driver it tests.

`tests/` is a package so that pytest puts the repository root on sys.path
and imports each test folder as `tests.<folder>`: a folder named after a
module of the standard library (tests/queue) then shadows nothing.
Helpers that tests import live in tests/support; fixtures shared by more
than one folder in tests/conftest.py.
"""
