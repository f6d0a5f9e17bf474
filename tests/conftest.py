"""Shared setup of the project's tests."""

# pytester's in-process runs put sys.modules back as they were after each inner run. A module first
# imported inside one is imported anew by the next, and cryptography's Rust core then refuses the new
# copy's classes ("curve must be an EllipticCurve instance"). Importing what the harness's
# certificates use (harness/certs.py: trustme, cryptography) here keeps one copy for the session.
import cryptography.hazmat.primitives.asymmetric.ec  # noqa: F401
import trustme  # noqa: F401
