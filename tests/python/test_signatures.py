"""Signed keys from Python (issues 9 and 14): a state opened with a trusted vendor key takes a
key, offline or online, only as a license file signed by it and unchanged since, raises ``BadSignature``
otherwise and changes nothing, and keeps trusting the key when reopened without it. The
licenses are the fixtures of ``tests/fixtures/licenses``."""

from pathlib import Path
from typing import Dict

import pytest
import tollgate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "licenses"

UNSIGNED = (
    'key "OFF-1" refused: it is unsigned, and this state trusts vendor keys: an offline key '
    "must come as a license file signed by one of them"
)


@pytest.fixture(scope="module")
def texts() -> Dict[str, str]:
    """Every fixture file's text by name, plus the altered and malformed licenses."""
    files = {path.name: path.read_text() for path in FIXTURES.iterdir()}
    files["altered.lic"] = files["OFF-1.lic"].replace("1073741824", "2147483648")
    files["malformed.lic"] = files["OFF-1.lic"].replace("tollgate-license-2", "tollgate-license-9")
    return files


def fingerprint(public_key_text: str) -> str:
    return public_key_text.splitlines()[1]


def test_a_trusting_state_refuses_every_key_without_a_valid_signature(state_dir, texts) -> None:
    with tollgate.Engine(state_dir, trusted_keys=[texts["vendor.pub"]]) as engine:
        engine.create_project("p")
        cases = [
            ("OFF-1.json", UNSIGNED),
            ("altered.lic", "the key was altered after signing"),
            (
                "OFF-2.stranger.lic",
                f"signed by {fingerprint(texts['stranger.pub'])}, "
                "which is not a trusted vendor key",
            ),
            ("malformed.lic", 'malformed license: the format is "tollgate-license-9"'),
        ]
        for name, message in cases:
            for add in (engine.add_key, engine.add_reserve, engine.replace_key):
                with pytest.raises(tollgate.BadSignature) as refused:
                    add("p", texts[name])
                assert message in refused.value.message, name
                assert refused.value.status == tollgate.Status.BAD_SIGNATURE
            with pytest.raises(tollgate.BadSignature):
                engine.add_reserve_bulk(texts[name], all=True)
        assert engine.keys("p") == []
        assert not [e for e in engine.events() if e["kind"] == "key_added"]

        engine.add_key("p", texts["OFF-1.lic"])
        engine.add_reserve("p", texts["OFF-2.lic"])
        assert [(k["key"]["id"], k["status"]) for k in engine.keys("p")] == [
            ("OFF-1", "active"),
            ("OFF-2", "reserved"),
        ]
        # Online keys too: they come signed from the activation service.
        engine.create_project("q")
        engine.add_key("q", texts["ON-1.lic"])


def test_forged_online_key_under_trust_is_refused(state_dir, texts) -> None:
    """Regression: a home-made online per-core key of four billion cores was taken."""
    with tollgate.Engine(state_dir, trusted_keys=[texts["vendor.pub"]]) as engine:
        engine.create_project("p")
        events = engine.events()
        forged = {"id": "CORES", "delivery": "online", "kind": "commercial",
                  "edition": "standard", "scheme": {"per_core": {"max_cores": 4_000_000_000}}}
        for key in (forged, texts["ON-1.json"]):
            with pytest.raises(tollgate.BadSignature) as refused:
                engine.add_key("p", key)
            assert refused.value.message.endswith(
                "refused: it is unsigned, and this state trusts vendor keys: an online key must "
                "come from the activation service or as a license file signed by one of them"
            )
        assert engine.keys("p") == []
        assert engine.events() == events


def test_trust_cannot_be_downgraded_by_reopening_without_it(state_dir, texts) -> None:
    with tollgate.Engine(state_dir, trusted_keys=[texts["vendor.pub"]]) as engine:
        engine.create_project("p")
    with tollgate.Engine(state_dir) as engine:
        trusted = engine.trusted_keys()
        assert [t["key"] for t in trusted] == [fingerprint(texts["vendor.pub"])]
        with pytest.raises(tollgate.BadSignature, match="it is unsigned"):
            engine.add_key("p", texts["OFF-1.json"])
        assert engine.keys("p") == []
        engine.add_key("p", texts["OFF-1.lic"])


def test_trust_in_development_mode(engine, texts) -> None:
    assert engine.trusted_keys() == []
    engine.create_project("p")
    engine.add_key("p", texts["OFF-1.json"])  # development mode: unsigned accepted
    with pytest.raises(tollgate.BadSignature, match="altered after signing"):
        engine.replace_key("p", texts["altered.lic"])
    engine.trust(texts["vendor.pub"])
    engine.trust(texts["vendor.pub"])
    assert len(engine.trusted_keys()) == 1
    assert [e["public_key"] for e in engine.events() if e["kind"] == "vendor_key_trusted"] == [
        fingerprint(texts["vendor.pub"])
    ]
    with pytest.raises(tollgate.BadSignature, match="unsigned"):
        engine.add_key("p", texts["OFF-2.json"])
    engine.add_key("p", texts["OFF-2.lic"])


def test_vendor_key_texts_are_checked(state_dir, engine, texts) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="a vendor secret key where a public key"):
        engine.trust(texts["vendor.key"])
    with pytest.raises(tollgate.InvalidArgument, match="element 1"):
        tollgate.Engine(state_dir / "other", trusted_keys=[texts["vendor.pub"], "nonsense"])
    with pytest.raises(TypeError):
        tollgate.Engine(state_dir / "other", trusted_keys=texts["vendor.pub"])
    with tollgate.Engine(
        state_dir / "both", capacity=8, trusted_keys=[texts["vendor.pub"], texts["stranger.pub"]]
    ) as both:
        assert len(both.trusted_keys()) == 2
        both.create_project("p")
        both.add_key("p", texts["OFF-2.stranger.lic"])


def test_a_license_signed_by_another_languages_json_library_verifies(state_dir) -> None:
    """A vendor's license server signs a ``tollgate-license-2`` file over the key's RFC 8785
    bytes; for a key (integers, strings, objects) Python's own ``json.dumps`` with sorted keys,
    no whitespace and raw UTF-8 writes exactly those bytes. The engine takes the license, and
    refuses it once a value is edited."""
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    import base64
    import json

    secret = ed25519.Ed25519PrivateKey.generate()
    public = secret.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signer = base64.b64encode(public).decode()
    key = {
        "id": "PY-JCS-1",
        "delivery": "offline",
        "kind": "commercial",
        "edition": "enterprise",
        "company": "Müller & Søn",
        "scheme": {"data_volume": {"limit_bytes": 1 << 30}},
        "expires_at": "2027-01-01T00:00:00Z",
    }
    signed = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    license_text = json.dumps(
        {
            "format": "tollgate-license-2",
            "key": key,
            "signature": base64.b64encode(secret.sign(signed.encode())).decode(),
            "signer": signer,
        },
        indent=2,
    )
    altered = license_text.replace(str(1 << 30), str(1 << 31))
    with tollgate.Engine(
        state_dir, trusted_keys=[f"tollgate-vendor-public-1\n{signer}\n"]
    ) as engine:
        engine.create_project("p")
        with pytest.raises(tollgate.BadSignature, match="the key was altered after signing"):
            engine.add_key("p", altered)
        engine.add_key("p", license_text)
        assert [k["key"]["id"] for k in engine.keys("p")] == ["PY-JCS-1"]


def test_a_license_of_the_first_format_still_verifies(state_dir, texts) -> None:
    """``OFF-1.v1.lic`` is signed in ``tollgate-license-1``, before RFC 8785: still taken."""
    assert '"tollgate-license-1"' in texts["OFF-1.v1.lic"]
    with tollgate.Engine(state_dir, trusted_keys=[texts["vendor.pub"]]) as engine:
        engine.create_project("p")
        with pytest.raises(tollgate.BadSignature, match="altered after signing"):
            engine.add_key("p", texts["OFF-1.v1.lic"].replace("1073741824", "2147483648"))
        engine.add_key("p", texts["OFF-1.v1.lic"])
        assert [k["key"]["id"] for k in engine.keys("p")] == ["OFF-1"]
