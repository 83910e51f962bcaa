"""Pure: what the validation asks the cluster (`Lookups`) and what it was told (`ClusterFacts`).

The core works out the lookups from its one analysis of the object; the shell's facts provider
makes exactly those (from its caches, or live) and answers with plain values. Neither side
needs the other's code: resolve first, then decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lookups:
    """The cluster lookups one review needs. Empty for objects no cluster-backed rule reads."""

    # Secrets whose key names are needed: those of the secrets map and the CA Secret, sorted
    secrets: tuple[str, ...] = ()
    # ServiceAccounts whose existence is needed (the one the pod template names)
    service_accounts: tuple[str, ...] = ()
    # the other StatefulSets of the namespace (their selectors and pod labels)
    statefulsets: bool = False

    def __bool__(self) -> bool:
        return bool(self.secrets or self.service_accounts or self.statefulsets)


@dataclass(frozen=True)
class OtherStatefulSet:
    name: str
    selector: Mapping[str, str]
    template_labels: Mapping[str, str]


@dataclass(frozen=True)
class ClusterFacts:
    """What the cluster said. `secrets` maps a Secret name to its keys, or None if it does not
    exist; names not in the map were not looked up. `unavailable` says why lookups failed."""

    secrets: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    statefulsets: tuple[OtherStatefulSet, ...] | None = None
    unavailable: str | None = None
    # ServiceAccount name -> exists; names not in the map were not looked up
    service_accounts: Mapping[str, bool] = field(default_factory=dict)
