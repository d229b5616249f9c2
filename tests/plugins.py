"""Drop one module into one of the project's packages for a test, as a contributor would add a
file there (docs/dev/extending.md): the package gains a temporary directory on its `__path__`,
so `lethe.registry.discover` finds the module by scanning the package, exactly like the
shipped ones. Everything is undone afterwards (the module, its registrations, the scan)."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from pathlib import Path


@contextlib.contextmanager
def module_in_package(package: str, name: str, source: str, tmp_path: Path,
                      registries: tuple[dict, ...] = ()):
    """Yield while `package.name` (holding `source`) is part of `package`. Entries it adds to
    any dict in `registries` (nested dicts too) are removed when the block ends."""
    from lethe.registry import discover, forget

    discover(package)  # the shipped entries are registered before the snapshot
    pkg = importlib.import_module(package)
    where = tmp_path / package.replace(".", "_")
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}.py").write_text(textwrap.dedent(source))
    before = [_snapshot(r) for r in registries]
    old_path = list(pkg.__path__)
    pkg.__path__.append(str(where))  # a package's __path__ is a list: extending it is allowed
    forget(package)
    try:
        yield f"{package}.{name}"
    finally:
        pkg.__path__[:] = old_path
        sys.modules.pop(f"{package}.{name}", None)
        for registry, snap in zip(registries, before):
            _restore(registry, snap)
        forget(package)


def _snapshot(registry: dict) -> dict:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in registry.items()}


def _restore(registry: dict, snap: dict) -> None:
    for key in list(registry):
        if key not in snap:
            del registry[key]
        elif isinstance(registry[key], dict):
            registry[key].clear()
            registry[key].update(snap[key])
