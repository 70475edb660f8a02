"""Package discovery: every package under ``agentrl/`` is found, never listed by hand.

``envs/`` and ``tools/`` install as ``agentrl_envs`` and ``agentrl_tools`` (never as
top-level ``envs`` / ``tools`` modules that could collide with other packages); their
subpackages are found the same way. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

RENAMED = {"agentrl_envs": "envs", "agentrl_tools": "tools"}


def packages() -> list[str]:
    found = find_packages(include=["agentrl", "agentrl.*"])
    for name, folder in RENAMED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(packages=packages(), package_dir=RENAMED)
