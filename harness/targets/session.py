"""TargetSession: a run's life with its target. It launches the broker (once, in the xdist
controller; once per worker for a broker that takes one scenario at a time) or checks the remote
endpoints, gives every worker the same view of it, decides per scenario what the target lacks
(capabilities, accounts, what the broker announces in its 5.0 CONNACK), picks the endpoints and
client kinds a scenario runs over, and stops the broker."""

from __future__ import annotations

import dataclasses
import socket
import tempfile
from pathlib import Path
from typing import Any

from harness.clients import Address, TlsMaterial, TlsOptions, parse_address
from harness.errors import HarnessError
from harness.scenarios.model import ANNOUNCED_FEATURES
from harness.scenarios.runner import Endpoint
from harness.scenarios.sharing import EVERY_SCENARIO
from harness.targets.profiles import Profile
from harness.targets.spec import Account, TargetNotInstalled, TargetSpec, account_capabilities
from harness.targets.urls import parse_endpoint_url, redact_url

# 5.0 CONNACK availability properties (0: the broker lacks it) -> the capability scenarios name.
ANNOUNCED_AVAILABILITY = {"retain_available": "retain", "wildcard_subscription_available": "wildcard_subscriptions",
                          "subscription_identifier_available": "subscription_identifiers",
                          "shared_subscription_available": "shared_subscriptions"}
ANNOUNCED_PROPERTY = {capability: prop for prop, capability in ANNOUNCED_AVAILABILITY.items()} | {
    "topic_alias": "topic_alias_maximum"}
# What a harness-launched broker always offers: the standard accounts and their ACL.
LAUNCHED_CAPABILITIES = {"auth": True, "restricted_account": True, "anonymous_refused": True}


class TargetSession:
    """The target for this run: launched once (by the xdist controller), reachable by every worker.

    A target has one or more named endpoints (tcp, tls, ws, wss, ...; a launched broker also mtls,
    tls-expired and tls-not-yet-valid); `endpoint(name)` gives the runner's view of one of them.
    """

    def __init__(self, spec: TargetSpec, profile: Profile) -> None:
        self.spec = spec
        self.profile = profile
        self._endpoint: Endpoint | None = None  # accounts and settings; address of the default endpoint
        self._addresses: dict[str, Address] = {}
        self._checked: dict[str, str | None] = {}  # remote endpoint name -> why it is unreachable (None: fine)
        self._error: str | None = None
        self._not_installed = False  # _error says the broker's software is missing (a skip, not an error)
        self._broker: Any = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.version: str | None = None
        self.run_endpoints: list[str] = []  # what --transport chose (choose_endpoints)
        self.run_clients: list[str] = []  # what --clients chose: every scenario runs with these kinds
        self._announced: dict[str, Any] | None = None  # the CONNACK properties of a 5.0 probe (announced())

    @property
    def broker_per_worker(self) -> bool:
        """Whether each xdist worker gets a launched broker of its own: the profile runs every scenario
        alone (a broker that loses messages while other clients come and go), so one broker shared by
        the workers would run the whole suite one scenario at a time, whatever `-n` says."""
        return bool(self.spec.launch) and EVERY_SCENARIO in self.profile.run_alone

    def twin(self) -> TargetSession:
        """A session of the same target, with the same transports and clients chosen, that launches a
        broker of its own (for another xdist worker, when `broker_per_worker`)."""
        twin = TargetSession(self.spec, self.profile)
        twin.run_endpoints, twin.run_clients = list(self.run_endpoints), list(self.run_clients)
        return twin

    @property
    def capabilities(self) -> dict[str, bool]:
        merged = dict(self.profile.capabilities)
        if self.spec.launch:
            merged.update(LAUNCHED_CAPABILITIES)
        merged.update(self.spec.capabilities)
        return merged

    # -- what the broker announces (5.0 CONNACK) ---------------------------------------------------

    def announced(self) -> dict[str, Any]:
        """The properties of the CONNACK the broker sends a plain 5.0 CONNECT (default account, Clean
        Start), fetched once per run; {} when the profile offers no 5.0 or the probe is refused."""
        if self._announced is None:
            self._announced = self._probe()
        return self._announced

    def _probe(self) -> dict[str, Any]:
        from harness.clients import PacketReceived, RawClient, open_transport
        from harness.wire import Connack, Connect, Disconnect, Version, packet_fields

        if Version.V5 not in self.profile.protocols:
            return {}
        try:
            endpoint = self.endpoint()
            transport = open_transport(endpoint.address, connect_timeout=5.0)
        except Exception:  # unreachable, TLS refused, ...: nothing announced (the scenarios report the problem)
            return {}
        client = RawClient(transport, Version.V5, name="probe")
        try:
            account = endpoint.accounts.get("default")
            client.send_packet(Connect(client_id="hprobe" + _token(), clean_session=True,
                                       username=getattr(account, "username", None),
                                       password=getattr(account, "password", None)))
            event = client.next_event(5.0)
            if not isinstance(event, PacketReceived) or not isinstance(event.decoded.packet, Connack) \
                    or event.decoded.packet.reason_code != 0:
                return {}
            client.send_packet(Disconnect())
            return dict(packet_fields(event.decoded.packet).get("properties") or {})
        finally:
            client.close()

    def announced_capabilities(self) -> dict[str, bool]:
        """What the CONNACK says the broker lacks, as capabilities set to False (never True: a broker
        offers what it does not deny, and the profile decides the rest)."""
        props = self.announced()
        lacks: dict[str, bool] = {}
        maximum_qos = props.get("maximum_qos")
        if maximum_qos is not None and maximum_qos < 2:
            lacks["qos2"] = False
            if maximum_qos < 1:
                lacks["qos1"] = False
        for prop, capability in ANNOUNCED_AVAILABILITY.items():
            if props.get(prop) == 0:
                lacks[capability] = False
        if props and not props.get("topic_alias_maximum"):
            lacks["topic_alias"] = False  # absent means 0: the client may send no alias
        return lacks

    def missing_capabilities(self, scenario: Any) -> str | None:
        """Why the scenario does not apply to this target (a skip reason), or None.

        `requires: [X]` needs capability X (profile, target, launch; a 5.0 broker's own CONNACK denial
        wins); `requires: [no_X]` needs X known to be absent (the scenario is about a broker without
        it). A 5.0 scenario whose steps use a feature the broker announces it lacks is skipped too.
        """
        from harness.wire import Version

        capabilities = self.capabilities
        v5 = scenario.protocol == Version.V5
        denied = self.announced_capabilities() if v5 and self._needs_probe(scenario) else {}
        capabilities.update(denied)
        missing = [need for need in scenario.requires if not need.startswith("no_") and not capabilities.get(need, False)]
        if missing:
            said = [need for need in missing if need in denied]
            why = f" (its CONNACK announces {self._announcement_text(said)})" if said else self._account_note(missing)
            return f"target {self.spec.name} does not offer: {', '.join(missing)}{why}"
        present = [need[3:] for need in scenario.requires if need.startswith("no_") and capabilities.get(need[3:], True) is not False]
        if present:
            return (f"target {self.spec.name} offers {', '.join(present)} (or does not say it lacks it); "
                    f"the scenario is about a broker without it")
        unusable = self.missing_accounts(scenario)
        if unusable:
            return unusable
        if v5:
            used = [feature for feature in scenario.uses if feature in denied]
            if used:
                lines = ", ".join(f"{feature} (line {scenario.uses[feature]})" for feature in used)
                return (f"the scenario uses {lines}, which target {self.spec.name} lacks: "
                        f"its CONNACK announces {self._announcement_text(used)}")
        return None

    def missing_accounts(self, scenario: Any) -> str | None:
        """Why the accounts the scenario uses (Scenario.accounts) are not all there (a skip reason), or None.

        Only a reached target's accounts are known before the run (targets.yaml, the URL's user info);
        a launched broker brings the standard ones, with credentials."""
        if self.spec.launch:
            return None
        accounts = self.spec.accounts
        for name, use in scenario.accounts.items():
            account = accounts.get(name)
            if account is None:
                return (f"the scenario connects with account {name!r} (line {use.line}); target {self.spec.name} has "
                        f"no such account (it has: {', '.join(accounts) or 'none'}; see targets.yaml accounts)")
            if use.credentials_line is not None and account.anonymous:
                return (f"the scenario writes the user name or password of account {name!r} (line {use.credentials_line}); "
                        f"target {self.spec.name} has only an anonymous {name} account{self._anonymous_note(name)}")
        return None

    def _account_note(self, missing: list[str]) -> str:
        """Why a reached target lacks `auth` / `restricted_account`, when its accounts are the reason."""
        if self.spec.launch:
            return ""
        derived = account_capabilities(self.spec.accounts)
        notes = []
        if "auth" in missing and not derived["auth"]:
            notes.append(f"its default account is anonymous{self._anonymous_note('default')}")
        if "restricted_account" in missing and not derived["restricted_account"]:
            notes.append("it has no restricted account (targets.yaml accounts.restricted)")
        return f" ({'; '.join(notes)})" if notes else ""

    def _anonymous_note(self, name: str) -> str:
        if name == "default" and self.spec.source == "--broker":
            return ": the URL has no user info, as in mqtt://user:password@host:port"
        return ""

    def _needs_probe(self, scenario: Any) -> bool:
        return bool(scenario.uses) or any(need.removeprefix("no_") in ANNOUNCED_FEATURES for need in scenario.requires)

    def _announcement_text(self, capabilities: list[str]) -> str:
        props = self.announced()
        shown: list[str] = []
        for capability in capabilities:
            prop = "maximum_qos" if capability in ("qos1", "qos2") else ANNOUNCED_PROPERTY.get(capability, capability)
            text = f"{prop}={props.get(prop, 0)}"
            if text not in shown:
                shown.append(text)
        return ", ".join(shown)

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.profile.settings, **self.spec.settings}

    # -- endpoints, known before anything starts --------------------------------------------------

    def endpoint_names(self) -> list[str]:
        """Every endpoint the target offers, default first."""
        if self.spec.launch:
            from harness.launch import launcher_listeners

            return list(launcher_listeners(self.spec.launch))
        return list(self.spec.endpoints)

    def transport_of(self, name: str) -> str:
        if self.spec.launch:
            from harness.launch import LISTENER_KINDS

            return LISTENER_KINDS[name]
        return parse_address(self.spec.endpoints[name]).transport

    def endpoint_for_transport(self, transport: str) -> str | None:
        """The endpoint a `--transport` value means: the one of that name, else the first of that transport."""
        names = self.endpoint_names()
        if transport in names:
            return transport
        return next((name for name in names if self.transport_of(name) == transport), None)

    def choose_endpoints(self, option: str | None) -> list[str]:
        """The endpoints transport-agnostic scenarios run over: `--transport` (names or transports,
        comma-separated, or `all` for every plain/TLS/WebSocket endpoint), else the target's default."""
        names = self.endpoint_names()
        if not option:
            chosen = self.default_endpoints()
        elif option.strip() == "all":
            # The special-purpose listeners of a launched broker (mtls, tls-expired, ...) serve their own scenarios.
            chosen = [n for n in names if (not self.spec.launch or n in ("tcp", "tls", "ws", "wss")) and self.offers(n)]
        else:
            chosen = []
            for wanted in (part.strip() for part in option.split(",") if part.strip()):
                name = self.endpoint_for_transport(wanted)
                if name is None:
                    raise HarnessError(f"--transport {wanted}: target {self.spec.name} has no such endpoint (it has: {', '.join(names)})")
                chosen.append(name)
        self.run_endpoints = list(dict.fromkeys(chosen))
        return self.run_endpoints

    def offers(self, name: str) -> bool:
        """Whether the platform serves the endpoint's transport: the profile setting `transports` (Itron:
        tls only), when given; an endpoint outside it is reached only by name (`open: {endpoint: tcp}`)."""
        offered = self.settings.get("transports")
        return offered is None or self.transport_of(name) in offered

    def default_endpoints(self) -> list[str]:
        """The endpoint a run uses without --transport: the target's first one the platform serves."""
        names = self.endpoint_names()
        return [next((n for n in names if self.offers(n)), names[0])] if names else []

    def choose_clients(self, option: str | None) -> list[str]:
        kinds = [part.strip() for part in (option or "").split(",") if part.strip()]
        unknown = [kind for kind in kinds if kind not in ("raw", "paho")]
        if unknown:
            raise HarnessError(f"--clients: unknown client kind {', '.join(unknown)} (known: raw, paho)")
        self.run_clients = list(dict.fromkeys(kinds))
        return self.run_clients

    def variants(self, scenario: Any) -> list[tuple[str | None, str, str]]:
        """One test item per (endpoint, client kind): [(endpoint or None if none fits, kind, id suffix)].

        A scenario about certain transports (`transports: [ws, wss]`) runs over the run's endpoints of
        those transports; if the run has none, once over the target's first endpoint of one (it is
        about that transport, whatever --transport says), else it is skipped.
        """
        chosen = self.run_endpoints or self.default_endpoints()
        fitting: list[str | None] = list(chosen)
        if scenario.transports:
            fitting = [n for n in chosen if self.transport_of(n) in scenario.transports]
            if not fitting:
                offered = [n for n in (self.endpoint_for_transport(t) for t in scenario.transports) if n is None or self.offers(n)]
                fitting = [next((n for n in offered if n is not None), None)]
        kinds = self.run_clients or list(scenario.clients)
        result = []
        for name in fitting:
            for kind in kinds:
                params = ([name] if len(chosen) > 1 and name else []) + ([kind] if len(kinds) > 1 else [])
                result.append((name, kind, f"[{'-'.join(params)}]" if params else ""))
        return result

    def missing_for(self, scenario: Any, endpoint: str | None, kind: str = "raw") -> str | None:
        """Why `scenario` cannot run over `endpoint` with the client `kind` (a skip reason), or None."""
        if kind == "paho":
            from harness.clients.paho import scenario_raw_only

            reason = scenario_raw_only(scenario.steps, scenario.protocol)
            if reason:
                return f"needs the raw client: {reason}"
        if endpoint is None:
            offered = self.settings.get("transports")
            if offered is not None and any(self.endpoint_for_transport(t) for t in scenario.transports):
                return (f"scenario is about {' or '.join(scenario.transports)}; profile {self.profile.name} serves "
                        f"only {', '.join(offered)} (setting transports)")
            return (f"scenario is about {' or '.join(scenario.transports)}; target {self.spec.name} offers "
                    f"only {', '.join(self.endpoint_names())}")
        names = self.endpoint_names()
        for step in scenario.steps:
            named = step.args.get("endpoint") if isinstance(step.args, dict) else None
            if named and named not in names:
                return f"target {self.spec.name} offers no {named!r} endpoint (it has: {', '.join(names)})"
            tls = step.args.get("tls") if isinstance(step.args, dict) else None
            if isinstance(tls, dict) and tls.get("client_cert") == "target" and not self.spec.launch \
                    and not self.spec.tls.get("cert_file") and not self.spec.tls_options(named or endpoint).cert_file:
                return f"target {self.spec.name} has no client certificate (tls.cert_file / --tls-cert)"
        return None

    def header_lines(self) -> list[str]:
        """What the run header says about the target's endpoints, and loudly if verification is off."""
        where = f"launched by the harness ({self.spec.launch})" if self.spec.launch else "reached over the network"
        chosen = self.run_endpoints or self.default_endpoints()
        lines = [f"mqtt target: {self.spec.name}, {where}; endpoints: {', '.join(self.endpoint_names())}; "
                 f"scenarios run over: {', '.join(chosen)}"]
        for name, url in self.spec.endpoints.items():
            tls = f" ({self.spec.tls_options(name).describe()})" if self.transport_of(name) in ("tls", "wss") else ""
            lines.append(f"  {name}: {redact_url(url)}{tls}")
        insecure = self.insecure_endpoints()
        if insecure:
            lines.append("!" * 100)
            lines.append(f"!!! TLS CERTIFICATE VERIFICATION IS OFF for {', '.join(insecure)} (--tls-insecure / tls.insecure):")
            lines.append("!!! the broker's certificate and host name are NOT checked; TLS failure scenarios cannot pass.")
            lines.append("!" * 100)
        return lines

    def insecure_endpoints(self) -> list[str]:
        """Endpoints whose TLS certificate verification is switched off (said loudly in the run header)."""
        return [name for name in self.endpoint_names()
                if self.transport_of(name) in ("tls", "wss") and self.spec.tls_options(name).insecure]

    # -- the running target -------------------------------------------------------------------

    def endpoint(self, name: str | None = None) -> Endpoint:
        """The endpoint `name` (default: the target's first), starting the broker on first use;
        HarnessError if the target cannot be used or the endpoint is unreachable."""
        if self._endpoint is None and self._error is None:
            try:
                self._endpoint = self._start()
            except HarnessError as exc:
                self._error = str(exc)
        if self._error is not None:
            raise (TargetNotInstalled if self._not_installed else HarnessError)(self._error)
        assert self._endpoint is not None
        if name is None:
            name = next((n for n in self._addresses if self.offers(n)), next(iter(self._addresses)))
        address = self._addresses.get(name)
        if address is None:
            raise HarnessError(f"target {self.spec.name} has no endpoint {name!r} (it has: {', '.join(self._addresses)})")
        if not self.spec.launch:
            self._check_reachable(name, address)
        return dataclasses.replace(self._endpoint, host=address.host, port=address.port, transport=address.transport,
                                   path=address.path, tls=address.tls)

    def _check_reachable(self, name: str, address: Address) -> None:
        if name not in self._checked:
            try:
                with socket.create_connection((address.host, address.port), timeout=5):
                    self._checked[name] = None
            except OSError as exc:
                url = redact_url(self.spec.endpoints.get(name, address.url))
                self._checked[name] = f"broker {url} unreachable: {exc.strerror or exc}"
        problem = self._checked[name]
        if problem is not None:
            raise HarnessError(problem)

    def _start(self) -> Endpoint:
        from harness.certs import make_pki

        if self.spec.launch:
            from harness.launch import BrokerNotInstalled, LaunchError, launch, launcher_listeners

            self._workdir = tempfile.TemporaryDirectory(prefix=f"mqtt-harness-{self.spec.launch}-")
            listeners = launcher_listeners(self.spec.launch)
            options: dict[str, Any] = {"transports": listeners} if listeners != ("tcp",) else {}
            if self.spec.launch == "reference":  # the bundled broker imitates the profile's platform
                options.update(personality=self.profile.personality, personality_options=self.settings)
                if self.profile.broker:  # the profile's broker config (limits a reduced target announces)
                    options["broker_config"] = self.profile.broker
            try:
                self._broker = launch(self.spec.launch, Path(self._workdir.name), **options)
            except BrokerNotInstalled as exc:
                self._not_installed = True
                raise TargetNotInstalled(f"target {self.spec.name} is not installed here: {exc}") from None
            except LaunchError as exc:
                raise HarnessError(str(exc)) from None
            self.version = self._broker.version
            accounts = {name: Account(a.username, a.password) for name, a in self._broker.accounts.items()}
            accounts.update(self.spec.accounts)
            pki = self._broker.pki
            if pki is None:
                pki = make_pki(Path(self._workdir.name) / "client-certs")  # only the foreign material is used
            tls = TlsOptions(**{"ca_file": str(pki.ca), **self.spec.tls})
            for name, served in self._broker.endpoints.items():
                served_tls = None
                if served.transport in ("tls", "wss"):
                    served_tls = tls if name != "mtls" else dataclasses.replace(
                        tls, cert_file=str(pki.client.cert), key_file=str(pki.client.key))
                self._addresses[name] = Address(served.transport, served.host, served.port, served.path or "/mqtt", served_tls)
            material = TlsMaterial(ca_file=str(pki.ca), client_cert=str(pki.client.cert), client_key=str(pki.client.key),
                                   foreign_ca=str(pki.foreign_ca), foreign_cert=str(pki.foreign_client.cert),
                                   foreign_key=str(pki.foreign_client.key))
            return self._make_endpoint(accounts, material)
        self._workdir = tempfile.TemporaryDirectory(prefix="mqtt-harness-certs-")
        foreign = make_pki(Path(self._workdir.name))  # a CA and client certificate the target has never seen
        for name, url in self.spec.endpoints.items():
            address, _ = parse_endpoint_url(url, self.spec.source)
            if address.uses_tls:
                address = address.with_tls(self._tls_options(name))
            self._addresses[name] = address
        tls = self.spec.tls
        material = TlsMaterial(ca_file=tls.get("ca_file"), client_cert=tls.get("cert_file"), client_key=tls.get("key_file"),
                               foreign_ca=str(foreign.ca), foreign_cert=str(foreign.foreign_client.cert),
                               foreign_key=str(foreign.foreign_client.key))
        return self._make_endpoint(dict(self.spec.accounts), material)

    def _tls_options(self, name: str) -> TlsOptions:
        try:
            return self.spec.tls_options(name)
        except TypeError as exc:
            raise HarnessError(f"{self.spec.source}: bad TLS options for endpoint {name}: {exc}") from None

    def _make_endpoint(self, accounts: dict[str, Account], material: TlsMaterial) -> Endpoint:
        from harness.launch import RESTRICTED_PREFIX

        first = next(iter(self._addresses.values()))
        return Endpoint(host=first.host, port=first.port, accounts=accounts, profile=self.profile.name,
                        acl_allowed_prefix=RESTRICTED_PREFIX, settings=self.settings, transport=first.transport,
                        path=first.path, tls=first.tls, named=dict(self._addresses), tls_material=material)

    def export(self) -> dict[str, Any]:
        """What an xdist worker needs to use the controller's broker (plain data)."""
        try:
            endpoint = self.endpoint(next(iter(self.endpoint_names()), None))
        except HarnessError as exc:
            if self._endpoint is None:
                return {"error": str(exc), "not_installed": self._not_installed}
            endpoint = self._endpoint  # one remote endpoint is down: workers find out per endpoint
        return {
            "announced": _plain(self.announced()),
            "accounts": {k: [a.username, a.password] for k, a in endpoint.accounts.items()},
            "acl_allowed_prefix": endpoint.acl_allowed_prefix,
            "version": self.version,
            "addresses": {name: _address_data(a) for name, a in self._addresses.items()},
            "tls_material": dataclasses.asdict(endpoint.tls_material),
        }

    def adopt(self, exported: dict[str, Any]) -> None:
        """Use the broker the controller started instead of starting one."""
        if "error" in exported:
            self._error = exported["error"]
            self._not_installed = bool(exported.get("not_installed"))
            return
        self.version = exported.get("version")
        self._announced = exported.get("announced")
        accounts = {k: Account(*v) for k, v in exported["accounts"].items()}
        for name, data in exported["addresses"].items():
            tls = TlsOptions(**data["tls"]) if data["tls"] is not None else None
            self._addresses[name] = Address(data["transport"], data["host"], data["port"], data["path"], tls)
        endpoint = self._make_endpoint(accounts, TlsMaterial(**exported["tls_material"]))
        self._endpoint = dataclasses.replace(endpoint, acl_allowed_prefix=exported["acl_allowed_prefix"])

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def _token() -> str:
    import secrets

    return secrets.token_hex(4)


def _plain(properties: dict[str, Any]) -> dict[str, Any]:
    """CONNACK properties as data an xdist worker can receive (numbers and text; bytes as hex)."""
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in properties.items()
            if isinstance(v, int | str | bytes)}


def _address_data(address: Address) -> dict[str, Any]:
    return {"transport": address.transport, "host": address.host, "port": address.port, "path": address.path,
            "tls": dataclasses.asdict(address.tls) if address.tls is not None else None}
