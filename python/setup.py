"""Build hook: bundle the Tollgate shared library into the package when one is at hand.

`pip install ./python` after `cargo build --release -p tollgate-ffi` then gives a package that
works on its own. The library is taken, first found, from ``TOLLGATE_LIBRARY``, from the package
directory, or from the workspace's ``target/release``; a debug build in ``target/debug`` is
bundled only when ``TOLLGATE_LIBRARY`` names it. With none found the package installs without it
and looks the library up at import time instead (see ``_ffi.py``). The copy bundled is stripped
of its debug info when ``strip`` is on ``PATH``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

LIBRARY = {"darwin": "libtollgate.dylib", "win32": "tollgate.dll"}.get(
    sys.platform, "libtollgate.so"
)
HERE = Path(__file__).resolve().parent


def find_library() -> Optional[Path]:
    """The shared library to bundle, or None."""
    override = os.environ.get("TOLLGATE_LIBRARY")
    candidates = [Path(override)] if override else []
    candidates += [HERE / "tollgate" / LIBRARY, HERE.parent / "target" / "release" / LIBRARY]
    return next((c for c in candidates if c.is_file()), None)


class BuildPy(build_py):
    """Copies the shared library next to the package's modules."""

    def run(self) -> None:
        super().run()
        library = find_library()
        if library is not None and not self.dry_run:
            target = Path(self.build_lib) / "tollgate" / LIBRARY
            if not target.exists() or not target.samefile(library):
                shutil.copy2(library, target)
                strip = shutil.which("strip")
                if strip is not None and sys.platform.startswith("linux"):
                    # The release profile keeps line tables for profiling; a wheel needs none.
                    subprocess.run([strip, "--strip-debug", str(target)], check=True)


class BinaryDistribution(Distribution):
    """Marks the wheel platform-specific when it carries the native library."""

    def has_ext_modules(self) -> bool:
        return find_library() is not None


COMMANDS = {"build_py": BuildPy}

try:  # setuptools 70.1 and later carry bdist_wheel; before, the wheel package did
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]
    except ImportError:
        bdist_wheel = None  # type: ignore[assignment,misc]

if bdist_wheel is not None:

    class BdistWheel(bdist_wheel):  # type: ignore[misc,valid-type]
        """Tags the wheel ``py3-none-<platform>``: the package is pure Python over ctypes, and
        the library it carries depends on the platform only, not on the Python version or ABI
        (the default would be ``cp311-cp311-<platform>``)."""

        def get_tag(self):  # type: ignore[no-untyped-def]
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    COMMANDS["bdist_wheel"] = BdistWheel


setup(cmdclass=COMMANDS, distclass=BinaryDistribution)
