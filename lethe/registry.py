"""Registration without lists: a registry is filled by the modules that define its entries.

Each registry (unlearning methods, MUSE metrics, detox scorers and rewriters, detox train
algorithms) is a dict filled by a decorator in the module that defines the entry. Before a
registry is read, `discover(package)` imports every module of the package that holds the
entries (found by scanning the package's directories, so a new entry is one new file and no
list elsewhere names it). A module that fails to import is an error naming that module, never
an entry that silently goes missing.
"""

from __future__ import annotations

import importlib
import pkgutil

from lethe.errors import LetheError

_DISCOVERED: dict[str, list[str]] = {}  # package -> the modules found in it


def discover(package: str) -> list[str]:
    """Import every module under `package` (recursively), once; returns their names.

    Raises LetheError naming the first module that fails to import.
    """
    if package in _DISCOVERED:
        return _DISCOVERED[package]
    pkg = importlib.import_module(package)
    names = [info.name for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.",
                                                         onerror=_walk_error)]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001  (any failure: the entry would be missing)
            first = str(err).splitlines()[0] if str(err) else ""
            raise LetheError(f"{name} failed to import ({type(err).__name__}: {first}); fix "
                             f"or remove that module: its registrations are missing") from err
    _DISCOVERED[package] = names
    return names


def forget(package: str) -> None:
    """Scan `package` afresh on the next `discover` (tests that add a module at run time)."""
    _DISCOVERED.pop(package, None)


def _walk_error(name: str) -> None:
    raise LetheError(f"{name} failed to import while scanning its package; fix or remove it")
