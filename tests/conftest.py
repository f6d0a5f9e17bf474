"""Shared setup of the project's tests."""

import os
from pathlib import Path

# pytester's in-process runs put sys.modules back as they were after each inner run. A module first
# imported inside one is imported anew by the next, and cryptography's Rust core then refuses the new
# copy's classes ("curve must be an EllipticCurve instance"). Importing what the harness's
# certificates use (harness/certs.py: trustme, cryptography) here keeps one copy for the session.
import cryptography.hazmat.primitives.asymmetric.ec  # noqa: F401
import trustme  # noqa: F401

# The checkout's pinned Node tools (tools/package.json: Allure 3; tools/aedes/package.json: aedes and ws),
# once `npm ci --prefix tools` / `npm ci --prefix tools/aedes` installed them. The harness itself knows no
# repository: it looks at ALLURE_BIN / AEDES_DIR, then PATH, ./node_modules, npx and the global npm root.
# Inner runs (pytester, subprocesses) inherit these, whatever folder they run in.
TOOLS = Path(__file__).resolve().parents[1] / "tools"
if (TOOLS / "node_modules" / ".bin" / "allure").is_file():
    os.environ.setdefault("ALLURE_BIN", str(TOOLS / "node_modules" / ".bin" / "allure"))
if (TOOLS / "aedes" / "node_modules" / "aedes").is_dir():
    os.environ.setdefault("AEDES_DIR", str(TOOLS / "aedes"))
