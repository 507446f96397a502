"""`pip install ./python` gives a package that imports and meters on its own."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
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
