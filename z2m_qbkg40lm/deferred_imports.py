"""Load zigpy's HTTP dependencies only if something uses them.

`zigpy.application` imports `zigpy.ota.providers`, whose module body imports `aiohttp` and
`jsonschema`: about 10 MB resident and 0.1-0.2 s of start-up (measured on the 2-core test machine,
bare interpreter, `import zigpy.application, aiomqtt` plus the daemon's modules: 77.4 MB against
67.4 MB). Those libraries serve zigpy's remote OTA providers (downloading firmware indexes), which
this daemon never enables: its OTA images come from its own sources (`ota/sources.py`), and
`providers.py` touches `aiohttp` and `jsonschema` only inside functions (it uses
`from __future__ import annotations`, so even its type hints do not).

`defer_unused_imports()` puts a stand-in module in `sys.modules` for each: an `import` of it
binds the stand-in, and the first attribute looked up on it imports the real library, which then
replaces the stand-in in `sys.modules`. So nothing breaks if some code does use them; it pays the
import then. `importlib.util.LazyLoader` is no help here: the import system reads the module's
`__spec__` on every `import` statement, and that read is what makes a lazy module load. The
stand-in carries the real spec as a plain attribute.

Called by `z2m-qbkg40lm run` and `emulate` before zigpy is imported, never on package import, so
that a program importing this package keeps its own import behaviour.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

UNUSED_AT_START = ("aiohttp", "jsonschema")
"""Libraries zigpy imports at start and only its remote OTA providers use."""


class DeferredModule(types.ModuleType):
    """Stands in for a module until an attribute of it is first looked up."""

    def __getattr__(self, attribute: str) -> object:
        # Only called for attributes the stand-in lacks: everything but the module's identity.
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        return getattr(real, attribute)


def defer_import(name: str) -> bool:
    """Put a stand-in for top-level module `name` in `sys.modules`; False if it is already
    imported or not installed."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    stand_in = DeferredModule(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    return True


def defer_unused_imports() -> None:
    """Defer the libraries of `UNUSED_AT_START` (see the module docstring)."""
    for name in UNUSED_AT_START:
        defer_import(name)
