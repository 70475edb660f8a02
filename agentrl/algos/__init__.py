"""Advantage estimators and objectives, one file each, registered by name.

Importing this package imports every module in it, and each algorithm module registers its
classes with ``agentrl.algos.registry.register``; so adding an objective means adding one
file. ``agentrl algos list`` shows them. See ``agentrl.algos.base`` for the contract and
docs/algorithms.md for the math.
"""

import importlib
import pkgutil

from agentrl.algos.base import Algorithm, LossInputs, LossOutput, ObjectiveConfig
from agentrl.algos.core import GlobalCounts, aggregate
from agentrl.algos.registry import describe_all, get, make, names, register
from agentrl.batch import TokenBatch

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Algorithm",
    "GlobalCounts",
    "LossInputs",
    "LossOutput",
    "ObjectiveConfig",
    "TokenBatch",
    "aggregate",
    "describe_all",
    "get",
    "make",
    "names",
    "register",
]
