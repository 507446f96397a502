#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

The seeds are checked in; this script says what each one is and re-creates them after a change
of an input format (see the module documentation of each target in fuzz_targets/).
Run: python3 fuzz/make_corpus.py
"""
import json
import pathlib
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
MAX_LIMIT = (1 << 46) - 1
U64_MAX = (1 << 64) - 1


def key(scheme, key_id="K-1", **extra):
    fields = {"id": key_id, "delivery": "online", "kind": "commercial",
              "edition": "standard", "scheme": scheme}
    fields.update(extra)
    return json.dumps(fields, ensure_ascii=False).encode()


def dv(limit, key_id="K-1", **extra):
    return key({"data_volume": {"limit_bytes": limit}}, key_id, **extra)


KEY_JSON = {
    "dv_one_byte": dv(1),
    "dv_max_limit": dv(MAX_LIMIT),
    "dv_max_limit_plus_one": dv(MAX_LIMIT + 1),
    "dv_u64_max": dv(U64_MAX),
    "dv_zero": dv(0),
    "dv_negative": b'{"id": "K", "delivery": "online", "kind": "trial", "edition": "standard", '
                   b'"scheme": {"data_volume": {"limit_bytes": -1}}}',
    "per_machine_server": key({"per_machine": {"os": "server", "max_machines": 50}}),
    "per_machine_desktop_u32_max": key({"per_machine": {"os": "desktop",
                                                        "max_machines": 4294967295}}),
    "per_core": key({"per_core": {"max_cores": 64}}),
    "per_instance": key("per_instance"),
    "every_field": dv(1 << 30, "A-1", expires_at="2027-01-01T00:00:00+05:30", auto_renew=True,
                      company="Acme", activation_code="ACT-0001"),
    "leap_second_fraction": dv(10, expires_at="2026-12-31T23:59:60.999999999Z"),
    "id_64_bytes_utf8": dv(10, "é" * 32),
    "id_65_bytes": dv(10, "x" * 65),
    "id_escaped_nul": b'{"id": "a\\u0000b", "delivery": "offline", "kind": "subscription", '
                      b'"edition": "enterprise", "scheme": "per_instance"}',
    "id_invalid_utf8": b'{"id": "\xff\xfe", "delivery": "online", "kind": "commercial", '
                       b'"edition": "standard", "scheme": "per_instance"}',
    "unknown_field": b'{"id": "K", "delivery": "online", "kind": "trial", '
                     b'"edition": "standard", "scheme": "per_instance", "colour": "red"}',
}

NAMES = {
    "empty": b"",
    "one_byte": b"a",
    "ascii_64": b"p" * 64,
    "ascii_65": b"p" * 65,
    "utf8_64_bytes": b"p" * 62 + "é".encode(),
    "utf8_65_bytes": b"p" * 63 + "é".encode(),
    "nul_inside": b"ware\x00house",
    "tab": b"ware\thouse",
    "delete_char": b"ware\x7fhouse",
    "c1_control_nel": "ware\u0085house".encode(),
    "rtl_override_format_char": "ware\u202ehouse".encode(),
    "emoji_zwj": "👩‍💻 team".encode(),
    "invalid_utf8": b"ware\xffhouse",
    "space_only": b" ",
}

(CREATE, ADD, ADD_RESERVE, REPLACE, REMOVE_RESERVE, OPEN, VIEW, KEYS) = range(8)
KNOWN, AS_KEY_ID = 1, 2


def call(function, flags=0, project=b"", text=b""):
    assert len(project) < 256
    return bytes([function, flags, len(project)]) + project + text


C_STRINGS = {
    "create_valid": call(CREATE, project=b"warehouse"),
    "create_65_bytes": call(CREATE, project=b"p" * 65),
    "create_invalid_utf8": call(CREATE, project=b"ware\xc3\x28house"),
    "create_nul_cuts_name": call(CREATE, project=b"ab\x00cd"),
    "add_valid_key": call(ADD, KNOWN, text=dv(1 << 20, "S-1")),
    "add_u64_max_limit": call(ADD, KNOWN, text=dv(U64_MAX, "S-2")),
    "add_reserve_invalid_utf8_id": call(ADD_RESERVE, KNOWN | AS_KEY_ID, text=b"R\xff"),
    "add_reserve_scheme_mismatch": call(ADD_RESERVE, KNOWN, text=key("per_instance", "S-3")),
    "replace_id_with_quote": call(REPLACE, KNOWN | AS_KEY_ID, text=b'R"1'),
    "remove_reserve_active_id": call(REMOVE_RESERVE, KNOWN, text=b"fuzz-active"),
    "open_known": call(OPEN, KNOWN),
    "open_empty_name": call(OPEN),
    "view_known": call(VIEW, KNOWN),
    "keys_invalid_utf8": call(KEYS, project=b"\xed\xa0\x80"),
}

(CONSUME, PARTIAL, MANY) = range(3)
(ZERO, MAX, MAX_LIMIT_CLASS, REMAINING, ABOVE, BELOW, SMALL, ANY) = range(8)


def amount(cls, value=0):
    return bytes([cls]) + struct.pack("<Q", value)


def consume(cls, value=0):
    return bytes([CONSUME]) + amount(cls, value)


def partial(cls, value=0):
    return bytes([PARTIAL]) + amount(cls, value)


def many(*amounts):
    assert len(amounts) < 8
    return bytes([MANY + 3 * len(amounts)]) + b"".join(amount(*a) for a in amounts)


AMOUNTS = {
    "consume_zero_probe": consume(ZERO),
    "consume_u64_max": consume(MAX),
    "consume_exactly_remaining_then_probe": consume(REMAINING) + consume(ZERO),
    "consume_one_more_than_remains": consume(ABOVE, 0),
    "consume_max_limit_twice_through_switch": consume(MAX_LIMIT_CLASS) + consume(MAX_LIMIT_CLASS),
    "consume_just_below_then_ones": consume(BELOW, 1) + consume(SMALL, 1) + consume(SMALL, 1),
    "partial_u64_max": partial(MAX),
    "partial_remaining_then_zero": partial(REMAINING) + partial(ZERO),
    "many_overflowing_sum": many((MAX,), (MAX,)),
    "many_near_u64_max_plus_small": many((ANY, U64_MAX - 1), (SMALL, 2)),
    "many_two_max_limits_and_one": many((MAX_LIMIT_CLASS,), (MAX_LIMIT_CLASS,), (SMALL, 1)),
    "many_empty": many(),
    "many_zeros_around_remaining": many((ZERO,), (ZERO,), (REMAINING,), (ZERO,)),
}


def main():
    for target, seeds in [("key_json", KEY_JSON), ("names", NAMES), ("c_strings", C_STRINGS),
                          ("amounts", AMOUNTS)]:
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
