"""Masking: secrets become stars of the same length, in bytes and in every text shape the harness prints."""

from report_helpers import JWT

from harness.report.secrets import Secrets
from harness.wire import Version, describe, encode, hexdump
from harness.wire.packets import Connect


def test_bytes_keep_their_length_and_only_the_secret_changes() -> None:
    secrets = Secrets(["hunter22"])
    data = b"\x10\x20user hunter22 tail hunter22"
    masked = secrets.mask_bytes(data)
    assert len(masked) == len(data)
    assert masked == b"\x10\x20user ******** tail ********"


def test_a_secret_straddling_two_reads_is_masked_and_the_chunks_keep_their_sizes() -> None:
    secrets = Secrets(["hunter22"])
    chunks = [b"abc hun", b"ter22 def", b"!"]
    masked = secrets.mask_stream(chunks)
    assert [len(c) for c in masked] == [len(c) for c in chunks]
    assert b"".join(masked) == b"abc ******** def!"


def test_text_shapes_literal_hex_repr_and_url_encoded() -> None:
    secret = "p@ss:w0rd/x"
    secrets = Secrets([secret])
    raw = secret.encode()
    text = "\n".join([secret, raw.hex(), raw.hex(" "), raw.hex().upper(), repr(raw), "mqtt://u:p%40ss%3Aw0rd%2Fx@h"])
    masked = secrets.mask_text(text)
    for shape in (secret, raw.hex(), raw.hex(" "), raw.hex().upper(), "p%40ss%3Aw0rd%2Fx"):
        assert shape not in masked
    assert masked.splitlines()[0] == "*" * len(secret)


def test_a_hexdump_is_masked_across_its_lines_and_columns_and_keeps_its_indent() -> None:
    secrets = Secrets([JWT])
    packet = Connect(client_id="abc", username="harness", password=JWT.encode())

    data = encode(packet, Version.V311)
    text = "received: something\n" + "\n".join("          " + line for line in hexdump(data).splitlines()) + "\nchecks: x"
    masked = secrets.mask_text(text)
    assert masked.splitlines()[0] == "received: something" and masked.splitlines()[-1] == "checks: x"
    dump = "\n".join(line[10:] for line in masked.splitlines()[1:-1])
    assert dump == hexdump(data.replace(JWT.encode(), b"*" * len(JWT)))
    # Nothing of the secret survives in the dump's hex or ASCII columns, even a line's worth.
    hex_digits = "".join(line[10:60].replace(" ", "") for line in masked.splitlines()[1:-1])
    assert JWT.encode()[:16].hex() not in hex_digits


def test_a_long_secret_is_masked_even_where_a_preview_cuts_it() -> None:
    secrets = Secrets([JWT])
    preview = describe(Connect(client_id="x", password=JWT.encode()))  # shows the first 48 bytes only
    assert JWT[:48] in preview and JWT not in preview
    assert JWT[:16] not in secrets.mask_text(preview)


def test_short_and_empty_values_are_not_secrets() -> None:
    secrets = Secrets(["", "ab", None])  # type: ignore[list-item]
    assert not secrets
    assert secrets.mask_text("ab ab") == "ab ab"


def test_a_scenario_adds_its_own_secrets_without_changing_the_runs() -> None:
    run = Secrets(["run-secret"])
    scenario = run.with_values(["scenario-secret", None])
    assert scenario.mask_text("run-secret scenario-secret") == "********** ***************"
    assert run.mask_text("scenario-secret") == "scenario-secret"
