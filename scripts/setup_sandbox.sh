#!/usr/bin/env bash
# Installs and starts what the sandbox tests need, where missing: bubblewrap, Docker (dockerd)
# and debootstrap (the Docker image is built from Debian packages by the tests, or by
# `agentrl sandbox build`). Debian, as root. CI runs it before the test command.
set -euo pipefail
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup_sandbox: run as root to install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
if ! docker info >/dev/null 2>&1; then
  nohup dockerd >/tmp/agentrl-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup_sandbox: dockerd did not start; see /tmp/agentrl-dockerd.log" >&2; exit 1; }
fi
echo "setup_sandbox: $(bwrap --version), docker $(docker version --format '{{.Server.Version}}')"
