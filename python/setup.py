"""Build hook: bundle the release Tollgate shared library into the package.

The library bundled is, first found:

1. the one ``TOLLGATE_LIBRARY`` names (any build: whoever sets it chose it);
2. one already put in ``python/tollgate/``;
3. from the source tree (this directory inside the Cargo workspace, which is what
   ``pip install ./python`` builds: pip 21.3 and later build in place), the one
   ``scripts/release-build.sh`` makes: the release build that ``scripts/install-c.sh`` installs
   too, in ``target/dist`` (or ``$CARGO_TARGET_DIR/dist``). Cargo compiles it on the first
   install from a clean clone and finds it up to date afterwards. If that fails (no cargo and no
   earlier build, or a compile error), so does the install: a package built from the source tree
   never goes without its library.

Outside the source tree with neither of the first two (an sdist), the package installs without a
library and looks it up at import time (see ``_ffi.py``). A debug build is never bundled unless
``TOLLGATE_LIBRARY`` names it. The copy bundled is stripped of its debug info when ``strip`` is
on ``PATH``.
"""

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution
from setuptools.errors import ExecError

LIBRARY = {"darwin": "libtollgate.dylib", "win32": "tollgate.dll"}.get(
    sys.platform, "libtollgate.so"
)
HERE = Path(__file__).resolve().parent
RELEASE_BUILD = HERE.parent / "scripts" / "release-build.sh"


def in_source_tree() -> bool:
    """Whether this is ``python/`` of the Cargo workspace, which can build the library."""
    return RELEASE_BUILD.is_file() and (HERE.parent / "ffi" / "Cargo.toml").is_file()


def given_library() -> Optional[Path]:
    """The library ``TOLLGATE_LIBRARY`` names, else one in the package directory, else None."""
    override = os.environ.get("TOLLGATE_LIBRARY")
    if override:
        if not Path(override).is_file():
            raise ExecError(f"TOLLGATE_LIBRARY is {override!r}, which is not a file")
        return Path(override)
    packaged = HERE / "tollgate" / LIBRARY
    return packaged if packaged.is_file() else None


@lru_cache(maxsize=None)
def library_to_bundle() -> Optional[Path]:
    """The shared library to bundle, made by the shared release build when none is given."""
    given = given_library()
    if given is not None or not in_source_tree():
        return given
    print(f"building the release library: {RELEASE_BUILD}", file=sys.stderr, flush=True)
    try:
        build = subprocess.run(
            ["bash", str(RELEASE_BUILD)], stdout=subprocess.PIPE, text=True, check=False
        )
    except OSError as error:
        raise ExecError(f"could not run {RELEASE_BUILD}: {error}") from error
    if build.returncode != 0:
        raise ExecError(
            f"{RELEASE_BUILD} failed (exit status {build.returncode}; its output is above): "
            "the package is not built without its library. Install Rust (https://rustup.rs), "
            "or set TOLLGATE_LIBRARY to a libtollgate built beforehand"
        )
    built = Path(build.stdout.strip().splitlines()[-1]) / LIBRARY
    if not built.is_file():
        raise ExecError(f"{RELEASE_BUILD} succeeded but made no {built}")
    return built


class BuildPy(build_py):
    """Copies the shared library next to the package's modules."""

    def run(self) -> None:
        super().run()
        library = library_to_bundle()
        if library is None:
            print(
                f"warning: no {LIBRARY} to bundle (not in the source tree, TOLLGATE_LIBRARY "
                "unset): the package will look for it at import time",
                file=sys.stderr,
            )
        elif not self.dry_run:
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
        # Decided without building: in the source tree, the build either bundles the library
        # or fails.
        return in_source_tree() or given_library() is not None


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
