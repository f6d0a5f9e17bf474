"""The bundled reference MQTT broker (3.1, 3.1.1, 5.0): `python -m harness.broker --config FILE`.

Modules, from the wire inwards:

- `__main__`: command line, signals, the `ready` line.
- `server`: asyncio listeners (a transport seam for TLS / WebSocket), shutdown.
- `connection`: one client's protocol state machine over `harness.wire` (decoder findings first).
- `core`: shared state and routing: sessions, subscriptions, retained messages, wills, expiry.
- `sessions`: per-session flow: in-flight window, bounded queue, redelivery with DUP.
- `topics`: topic/filter syntax, matching, the subscription trie. `retained`: messages and the store.
- `auth`: users, ACL (`%c`/`%u`), pluggable 5.0 enhanced authentication.
- `personalities`: the hooks a vendor personality overrides; `strict` is the spec.
- `config`: the YAML file and its validation.
"""
