"""The libraries zigpy imports but the daemon never uses are loaded only on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter (imports are process-wide); returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_zigpy_imports_without_loading_aiohttp_or_jsonschema() -> None:
    out = run_python(
        """
        import sys
        from z2m_qbkg40lm.deferred_imports import defer_unused_imports
        defer_unused_imports()
        import zigpy.application, zigpy.ota.providers
        import z2m_qbkg40lm.daemon, z2m_qbkg40lm.sim.virtual_radio
        print(sorted(n for n in sys.modules if n.split(".")[0] in ("aiohttp", "jsonschema", "yarl")))
        """
    )
    assert out == "['aiohttp', 'jsonschema']"  # the two stand-ins, nothing of the libraries


def test_the_first_use_loads_the_real_library_in_place_of_the_stand_in() -> None:
    out = run_python(
        """
        import sys
        from z2m_qbkg40lm.deferred_imports import DeferredModule, defer_unused_imports
        defer_unused_imports()
        import zigpy.ota.providers as providers
        assert isinstance(sys.modules["aiohttp"], DeferredModule)
        session = providers.aiohttp.ClientSession
        assert not isinstance(sys.modules["aiohttp"], DeferredModule)
        assert session is sys.modules["aiohttp"].ClientSession
        assert providers.jsonschema.validate({"a": 1}, {"type": "object"}) is None
        import aiohttp.web  # a submodule after the swap
        print(sys.modules["aiohttp"].web.Application.__name__)
        """
    )
    assert out == "Application"


def test_a_submodule_import_before_any_use_loads_the_package_too() -> None:
    out = run_python(
        """
        from z2m_qbkg40lm.deferred_imports import defer_unused_imports
        defer_unused_imports()
        import aiohttp.web
        import sys
        print(type(sys.modules["aiohttp"]).__name__, hasattr(sys.modules["aiohttp"], "web"))
        """
    )
    assert out == "module True"


def test_a_library_already_imported_or_missing_is_left_alone() -> None:
    out = run_python(
        """
        import json
        from z2m_qbkg40lm.deferred_imports import defer_import
        print(defer_import("json"), defer_import("no_such_module_here"))
        """
    )
    assert out == "False False"
