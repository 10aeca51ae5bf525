"""Policies and sites: the configuration aggregate."""

from __future__ import annotations

import dataclasses

from sqlalchemy import delete, insert, select

from scheduler.errors import NotFound, no_policy
from scheduler.model import Policy, Site
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import SqlEngine


class SqlConfig(SqlEngine):
    """Policies and sites; each change bumps ``config_version`` so callers drop cached ones."""

    config_version: int  # JobStore's counter

    # -- policies -------------------------------------------------------------------------
    def put_policy(self, policy: Policy) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        values = dataclasses.asdict(policy)
        with self._tx(f"save policy {policy.name!r}") as conn:
            conn.execute(delete(t.policies).where(t.policies.c.name == policy.name))
            conn.execute(insert(t.policies), values)

    def get_policy(self, name: str) -> Policy:
        with self._tx(f"read policy {name!r}", write=False) as conn:
            row = conn.execute(select(t.policies).where(t.policies.c.name == name)).first()
        if row is None:
            raise no_policy(name)
        return Policy(**row._mapping)

    def list_policies(self) -> list[Policy]:
        with self._tx("list policies", write=False) as conn:
            rows = conn.execute(select(t.policies).order_by(t.policies.c.name)).all()
        return [Policy(**r._mapping) for r in rows]

    def delete_policy(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        with self._tx(f"delete policy {name!r}") as conn:
            n = conn.execute(delete(t.policies).where(t.policies.c.name == name)).rowcount
        if n == 0:
            raise no_policy(name)

    # -- sites ----------------------------------------------------------------------------
    def put_site(self, site: Site) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        values = dataclasses.asdict(site)
        with self._tx(f"save site {site.name!r}") as conn:
            conn.execute(delete(t.sites).where(t.sites.c.name == site.name))
            conn.execute(insert(t.sites), values)

    def get_site(self, name: str) -> Site:
        with self._tx(f"read site {name!r}", write=False) as conn:
            row = conn.execute(select(t.sites).where(t.sites.c.name == name)).first()
        if row is None:
            raise NotFound(f"no site named {name!r}: see `carbonshift site list`")
        return Site(**row._mapping)

    def list_sites(self) -> list[Site]:
        with self._tx("list sites", write=False) as conn:
            rows = conn.execute(select(t.sites).order_by(t.sites.c.name)).all()
        return [Site(**r._mapping) for r in rows]

    def delete_site(self, name: str) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        with self._tx(f"delete site {name!r}") as conn:
            n = conn.execute(delete(t.sites).where(t.sites.c.name == name)).rowcount
        if n == 0:
            raise NotFound(f"no site named {name!r}: see `carbonshift site list`")
