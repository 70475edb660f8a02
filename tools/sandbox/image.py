"""The Docker sandbox's image, built offline from Debian packages (no registry needed).

Owns ``IMAGE`` (its name; the tag changes when the recipe does) and ``build_image``:
``debootstrap --variant=minbase --include=python3`` of Debian bookworm into a temporary
folder, from the mirror apt already uses, then ``docker import`` of that tree. The root
filesystem's tarball is cached (``~/.cache/agentrl/sandbox/``), so a rebuild, or CI with a
cache, skips debootstrap. Needs root, ``debootstrap`` and a running Docker daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("python3",)  # the interpreter and its full standard library
IMAGE = f"agentrl-sandbox:{SUITE}-1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentrl" / "sandbox"


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 or one-line sources), else the default."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
    return DEFAULT_MIRROR


def build_image(image: str = IMAGE, mirror: str | None = None, log=print) -> str:
    """Build ``image`` unless Docker has it; returns its name. Raises ``RuntimeError`` (one line)."""
    if _docker(["image", "inspect", image], check=False).returncode == 0:
        log(f"{image} is already built")
        return image
    tarball = cache_dir() / f"{image.replace(':', '-')}.tar"
    if not tarball.exists():
        _rootfs(tarball, mirror or apt_mirror(), log)
    log(f"importing {tarball} as {image}")
    with tarball.open("rb") as stream:
        _docker(["import", "-", image], stdin=stream)
    return image


def _rootfs(tarball: Path, mirror: str, log) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt install debootstrap)")
    if os.geteuid() != 0:
        raise RuntimeError("building the sandbox image needs root (debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agentrl-rootfs-") as root:
        log(f"debootstrap {SUITE} with {', '.join(PACKAGES)} from {mirror} (about a minute)")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, root, mirror]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", root, "-cf", str(partial), "."], check=True)
        partial.replace(tarball)  # a killed build leaves no half tarball under the final name


def _docker(args: list[str], check: bool = True, stdin=None) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise RuntimeError("the docker command is not installed")
    done = subprocess.run(["docker", *args], stdin=stdin, capture_output=True, text=stdin is None)
    if check and done.returncode != 0:
        err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode(errors="replace")
        raise RuntimeError(f"docker {args[0]} failed: {err.strip()[-300:]}")
    return done
