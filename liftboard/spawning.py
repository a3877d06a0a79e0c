"""Starting child processes by ``spawn`` from a process whose ``__main__`` must not run again."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def main_script_hidden() -> Iterator[None]:
    """While a child process is spawned, hide the parent's ``__main__`` script from it.

    A spawned child re-imports the parent's ``__main__`` (by its file) before it runs its target. The
    build's matching process and a local Dask cluster's workers run Liftboard's own modules, so they
    never need it, and the parent's script may be one that must not run twice: Streamlit's ``app.py``
    or a page (left as ``__main__`` by an AppTest run in a test worker), a test runner, a notebook. A
    bare stand-in module has neither a spec nor a file, so the child imports nothing of the parent's.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
