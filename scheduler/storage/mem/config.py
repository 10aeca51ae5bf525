"""Policies and sites, by name.

Part of :class:`~scheduler.storage.mem.store.MemoryStore` (see :mod:`scheduler.storage.mem.state`).
"""

from __future__ import annotations

import dataclasses

from scheduler.domain.model import Policy, Site
from scheduler.storage.mem.state import MemoryState, _flag, _not_null, _utc


class MemoryConfig(MemoryState):
    """Policies and sites; each change bumps ``config_version`` so callers drop cached ones."""

    config_version: int  # JobStore's counter

    def put_policy(self, policy: Policy) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        stored = dataclasses.replace(
            policy, deadline_at=_utc(policy.deadline_at),
            latest_start_at=_utc(policy.latest_start_at), run_now=_flag(policy.run_now),
            interruptible=_flag(policy.interruptible))
        _not_null("policies", stored, f"save policy {policy.name!r}")
        self._policies.put(policy.name, stored)

    def get_policy(self, name: str) -> Policy:
        return self._policies.get(name)

    def list_policies(self) -> list[Policy]:
        return self._policies.all()

    def delete_policy(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        self._policies.delete(name)

    def put_site(self, site: Site) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        _not_null("sites", site, f"save site {site.name!r}")
        self._sites.put(site.name, site)

    def get_site(self, name: str) -> Site:
        return self._sites.get(name)

    def list_sites(self) -> list[Site]:
        return self._sites.all()

    def delete_site(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        self._sites.delete(name)


__all__ = ["MemoryConfig"]
