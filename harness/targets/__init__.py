"""Targets: the broker a run checks, named in targets.yaml or given as a URL, and its lifetime.

A target is either reached at a URL (someone else runs the broker) or launched by the harness on a
free loopback port (`launch: mosquitto`, `launch: reference`) and stopped when the run ends.
Credentials are never written in targets.yaml: they come from environment variables.

    spec.py          what a target is: TargetSpec, Account, TargetNotInstalled
    urls.py          target URLs and TLS fields, parsed and checked
    targets_file.py  the targets files (built-in, then the user's) and one entry of them
    profiles.py      a broker's profile: protocols, capabilities, the behaviour it documents
    session.py       TargetSession: a run's life with its target (launch, reach, what it lacks, stop)
    reach.py         the commands' (probe, fuzz) way to a target: a URL or a started entry
"""

from harness.targets.session import (
    ANNOUNCED_AVAILABILITY,
    ANNOUNCED_PROPERTY,
    LAUNCHED_CAPABILITIES,
    TargetSession,
)
from harness.targets.spec import ANONYMOUS, Account, TargetNotInstalled, TargetSpec, account_capabilities
from harness.targets.targets_file import (
    DEFAULT_TARGET,
    TargetsTable,
    load_targets,
    shown_path,
    target_from_file,
    target_from_table,
    user_targets_file,
)
from harness.targets.urls import (
    TLS_FIELDS,
    URL_SETTINGS,
    check_tls,
    parse_endpoint_url,
    parse_url,
    redact_url,
    target_from_url,
)

__all__ = [
    "ANNOUNCED_AVAILABILITY", "ANNOUNCED_PROPERTY", "ANONYMOUS", "DEFAULT_TARGET", "LAUNCHED_CAPABILITIES", "TLS_FIELDS",
    "URL_SETTINGS", "Account", "TargetNotInstalled", "TargetSession", "TargetSpec", "TargetsTable", "account_capabilities",
    "check_tls", "load_targets", "parse_endpoint_url", "parse_url", "redact_url", "shown_path", "target_from_file",
    "target_from_table", "target_from_url", "user_targets_file",
]
