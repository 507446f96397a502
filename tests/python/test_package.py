"""`pip install ./python` gives a package that imports and meters on its own."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import tollgate

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"


def can_build_offline() -> bool:
    """Whether setuptools and its wheel command are installed, so pip needs no download."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    return (
        importlib.util.find_spec("wheel") is not None
        or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    )


def test_pip_install_bundles_the_library(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PYTHON_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    env = dict(os.environ, TOLLGATE_LIBRARY=tollgate.LIBRARY_PATH)
    isolation = ["--no-build-isolation"] if can_build_offline() else []
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            *isolation,
            "--target",
            str(target),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = install.stdout + install.stderr
    if install.returncode and not isolation and "satisfies the requirement setuptools" in output:
        pytest.skip("pip could not download setuptools for an isolated build (offline?)")
    assert install.returncode == 0, output
    bundled = target / "tollgate" / Path(tollgate.LIBRARY_PATH).name
    assert bundled.is_file()
    assert (target / "tollgate" / "py.typed").is_file()
    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_LIBRARY"}
    env["PYTHONPATH"] = str(target)
    script = (
        "import tollgate, tempfile\n"
        "with tempfile.TemporaryDirectory() as state, tollgate.Engine(state) as engine:\n"
        "    engine.create_project('p')\n"
        "    engine.add_key('p', {'id': 'A', 'delivery': 'online', 'kind': 'trial',\n"
        "        'edition': 'standard', 'scheme': {'data_volume': {'limit_bytes': 10}}})\n"
        "    with engine.project('p') as project:\n"
        "        project.consume(4)\n"
        "        print(tollgate.LIBRARY_PATH, project.usage().active_used)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(bundled), "4"]


def test_the_wheel_is_tagged_for_every_python3_of_the_platform(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PYTHON_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    wheels = tmp_path / "wheels"
    env = dict(os.environ, TOLLGATE_LIBRARY=tollgate.LIBRARY_PATH)
    isolation = ["--no-build-isolation"] if can_build_offline() else []
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation]
        + ["--wheel-dir", str(wheels), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = build.stdout + build.stderr
    if build.returncode and not isolation and "satisfies the requirement setuptools" in output:
        pytest.skip("pip could not download setuptools for an isolated build (offline?)")
    assert build.returncode == 0, output
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert [w.name for w in wheels.iterdir()] == [
        f"tollgate-{tollgate.__version__}-py3-none-{platform}.whl"
    ]
    if shutil.which("strip") and shutil.which("readelf") and sys.platform.startswith("linux"):
        with zipfile.ZipFile(next(wheels.iterdir())) as wheel:
            bundled = tmp_path / "bundled.so"
            bundled.write_bytes(wheel.read(f"tollgate/{Path(tollgate.LIBRARY_PATH).name}"))
        sections = subprocess.run(
            ["readelf", "-S", str(bundled)], capture_output=True, text=True, check=True
        ).stdout
        assert ".debug_info" not in sections


def fresh_clone(destination: Path) -> None:
    """Clones the repository into `destination`, with the working tree's changes not yet
    committed (edited and new files, not ignored ones), so the test checks what would be
    committed; in CI the two are the same."""
    root = PYTHON_DIR.parent
    git = ["git", "-c", "advice.detachedHead=false"]
    subprocess.run([*git, "clone", "--quiet", str(root), str(destination)], check=True)
    diff = subprocess.run(
        [*git, "-C", str(root), "diff", "--binary", "HEAD"], capture_output=True, check=True
    ).stdout
    if diff:
        subprocess.run([*git, "-C", str(destination), "apply"], input=diff, check=True)
    untracked = subprocess.run(
        [*git, "-C", str(root), "ls-files", "-z", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, untracked.decode().split("\0")):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination / name)


def in_git_work_tree() -> bool:
    """Whether the repository this file sits in is a git work tree that git can clone."""
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(
        ["git", "-C", str(PYTHON_DIR.parent), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "true"


@pytest.mark.skipif(not in_git_work_tree(), reason="not a git work tree, or git is missing")
@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not on PATH")
def test_pip_install_in_a_fresh_clone_builds_the_release_library(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`pip install ./python` in a fresh clone, with no cargo build before it, into a fresh
    venv: the build compiles the shared release build (scripts/release-build.sh) and bundles
    it, stripped; the package meters from the venv; `scripts/install-c.sh` then finds the same
    build up to date. This compiles the core and the C ABI in release mode: minutes."""
    clone = tmp_path / "clone"
    fresh_clone(clone)
    assert not (clone / "target").exists()
    # The release build takes some 600 MB: freed now, not when pytest's directories go.
    request.addfinalizer(lambda: shutil.rmtree(clone / "target", ignore_errors=True))
    venv = tmp_path / "venv"
    offline = can_build_offline()
    # With setuptools and wheel on this Python, the venv sees them and pip needs no download.
    subprocess.run(
        [sys.executable, "-m", "venv", *(["--system-site-packages"] if offline else []), venv],
        check=True,
    )
    python = venv / "bin" / "python"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CARGO_TARGET_DIR", "TOLLGATE_LIBRARY", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")

    started = time.monotonic()
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps"]
        + (["--no-build-isolation"] if offline else [])
        + ["./python"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    print(f"pip install ./python in a fresh clone: {time.monotonic() - started:.0f} s")
    assert install.returncode == 0, install.stdout + install.stderr

    # The one release build, and no other: no debug build, no plain target/release.
    built = clone / "target" / "dist" / "release" / "libtollgate.so"
    assert built.is_file()
    assert not (clone / "target" / "debug").exists()
    assert not (clone / "target" / "release").exists()

    script = (
        "import tempfile, tollgate\n"
        "key = {'delivery': 'online', 'kind': 'trial', 'edition': 'standard',\n"
        "       'scheme': {'data_volume': {'limit_bytes': 10}}}\n"
        "with tempfile.TemporaryDirectory() as state, tollgate.Engine(state) as engine:\n"
        "    engine.create_project('p')\n"
        "    engine.add_key('p', {**key, 'id': 'A'})\n"
        "    engine.add_key('p', {**key, 'id': 'B'})\n"
        "    with engine.project('p') as project:\n"
        "        project.consume(8)\n"
        "        granted = project.consume_partial(5)\n"
        "        project.consume(6)\n"
        "        usage = project.usage()\n"
        "        print(tollgate.__file__, tollgate.LIBRARY_PATH, granted, usage.active_used,\n"
        "              usage.switches)\n"
    )
    result = subprocess.run(
        [python, "-c", script],
        cwd=tmp_path,
        env=env,  # with the test's own TOLLGATE_INSTALLATION (conftest.py)
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    module, library, granted, active_used, switches = result.stdout.split()
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(module) == Path(site) / "tollgate" / "__init__.py"
    assert Path(library) == Path(site) / "tollgate" / "libtollgate.so"
    # The partial 5: A's last 2, then 3 from B after the switch; B has 3 + 6 charged.
    assert (granted, active_used, switches) == ("5", "9", "1")

    if shutil.which("strip") and shutil.which("readelf"):
        # Exactly the release build, stripped: a debug build differs in every byte.
        stripped = tmp_path / "stripped.so"
        subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(built)], check=True)
        assert Path(library).read_bytes() == stripped.read_bytes()
        sections = subprocess.run(
            ["readelf", "-S", library], capture_output=True, text=True, check=True
        ).stdout
        assert ".debug_info" not in sections
        dynamic = subprocess.run(
            ["readelf", "-d", library], capture_output=True, text=True, check=True
        ).stdout
        assert "[libtollgate.so.0." in dynamic, dynamic  # the soname of install-c.sh's build

    # scripts/install-c.sh installs the same build: cargo compiles nothing.
    installed = subprocess.run(
        ["bash", "scripts/install-c.sh", str(tmp_path / "prefix")],
        cwd=clone,
        env={k: v for k, v in env.items() if k not in ("LIBDIR", "INCLUDEDIR", "DESTDIR")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    assert "Compiling" not in installed.stderr, installed.stderr
    assert "Finished" in installed.stderr, installed.stderr
