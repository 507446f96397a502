"""Activation by code from Python, against the real activation service:
``tollgate serve-activation`` started on loopback by the test, with a vendor key it makes.

The service binary is ``$TOLLGATE_BIN``, else ``target/debug/tollgate`` (``scripts/test.sh``
builds it before these tests run).
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import pytest
import tollgate
from conftest import ROOT

CODES = {
    "codes": [
        {
            "code": "ACT-PY",
            "term_days": 365,
            "renewals_left": 0,
            "activations": 1,
            "key": {
                "kind": "commercial",
                "edition": "standard",
                "scheme": {"data_volume": {"limit_bytes": 1 << 30}},
            },
        }
    ]
}


def binary() -> str:
    path = os.environ.get("TOLLGATE_BIN") or str(ROOT / "target" / "debug" / "tollgate")
    assert os.access(path, os.X_OK), f"{path} is not built: cargo build -p tollgate-cli"
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Tuple[str, Path]]:
    """The real service on a free loopback port: its URL and its directory (``codes.json``,
    ``vendor/vendor.pub``). Stopped with SIGTERM after the test."""
    vendor = tmp_path / "vendor-side"
    subprocess.run(
        [binary(), "license", "keygen", "--out", str(vendor / "vendor")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (vendor / "codes.json").write_text(json.dumps(CODES))
    process = subprocess.Popen(
        [
            binary(),
            "serve-activation",
            "--codes",
            str(vendor / "codes.json"),
            "--key",
            str(vendor / "vendor" / "vendor.key"),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield line.removeprefix("listening on "), vendor
    finally:
        process.terminate()
        process.wait(timeout=10)


def issued(vendor: Path) -> list:
    return json.loads((vendor / "codes.json").read_text())["codes"][0].get("issued", [])


def test_activate_adds_the_key_the_service_issues_for_this_machine(
    service: Tuple[str, Path], tmp_path: Path
) -> None:
    url, vendor = service
    public = (vendor / "vendor" / "vendor.pub").read_text()
    with tollgate.Engine(tmp_path / "state", trusted_keys=[public]) as engine:
        engine.create_project("wh")
        activated = engine.activate("wh", "ACT-PY", url)
        assert activated["key"] == "ACT-PY-1"
        assert activated["role"] == "active"
        assert [k["key"]["id"] for k in engine.keys("wh")] == ["ACT-PY-1"]
        records = issued(vendor)
        assert [(r["id"], r["machine"]) for r in records] == [("ACT-PY-1", engine.machine_id())]


def test_activation_past_the_limit_raises_activation_failed_and_changes_nothing(
    service: Tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, vendor = service
    with tollgate.Engine(tmp_path / "first") as first:
        first.create_project("wh")
        first.activate("wh", "ACT-PY", url)
    # Another installation is another machine.
    monkeypatch.setenv("TOLLGATE_INSTALLATION", str(tmp_path / "other-installation"))
    with tollgate.Engine(tmp_path / "second") as second:
        second.create_project("wh")
        with pytest.raises(tollgate.ActivationFailed) as refused:
            second.activate("wh", "ACT-PY", url)
        assert str(refused.value) == (
            'activation code "ACT-PY" was not activated: the activation service refused the '
            'request (409 no_activations_left): activation code "ACT-PY" has no activations '
            "left: its one activation is used by another machine"
        )
        assert refused.value.status == tollgate.Status.ACTIVATION_FAILED
        assert second.keys("wh") == []
    assert len(issued(vendor)) == 1


def test_activate_bulk_adds_one_key_as_the_reserve_of_every_project(
    service: Tuple[str, Path], engine: tollgate.Engine
) -> None:
    url, vendor = service
    for name in ("svm-1", "svm-2"):
        engine.create_project(name)
        engine.add_key(
            name,
            {
                "id": f"K-{name}",
                "delivery": "online",
                "kind": "commercial",
                "edition": "standard",
                "scheme": {"data_volume": {"limit_bytes": 1 << 30}},
            },
        )
    outcomes = engine.activate_bulk("ACT-PY", url, all=True)
    assert [(o["project"], o["status"], o["role"]) for o in outcomes] == [
        ("svm-1", "TG_OK", "reserved"),
        ("svm-2", "TG_OK", "reserved"),
    ]
    assert len(issued(vendor)) == 1
    with pytest.raises(tollgate.NotFound):
        engine.activate_bulk("ACT-PY", url, group="nowhere")
