"""Debian packages the tests need beside the project (nginx, chromium), installed with
apt-get the first time a test asks for one."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence

INSTALL_TIMEOUT = 900


class PackageUnavailable(RuntimeError):
    """The package cannot be installed here; the message says why."""


def _binary(names: Sequence[str]) -> str | None:
    for name in names:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


def ensure_deb(package: str, binaries: Sequence[str]) -> str:
    """The path of the first of ``binaries`` found, installing ``package`` when none is.

    Parallel test processes may call this at once: a lock file lets one install at a time.
    """
    found = _binary(binaries)
    if found:
        return found
    with open("/tmp/gatehouse-tests-apt.lock", "w") as lock:  # noqa: S108 - a lock, no data
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _binary(binaries)
        if found:
            return found
        if not shutil.which("apt-get"):
            raise PackageUnavailable(f"apt-get not found; install {package} yourself")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            [*sudo, "apt-get", "update"],
            [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package],
        ):
            done = subprocess.run(  # noqa: S603 - fixed arguments
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            if done.returncode != 0:
                raise PackageUnavailable(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    found = _binary(binaries)
    if not found:
        raise PackageUnavailable(f"{package} was installed but {binaries[0]} is not found")
    return found
