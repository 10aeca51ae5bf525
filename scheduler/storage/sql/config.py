"""Policies and sites: the configuration aggregate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, Table, delete, insert, select

from scheduler.domain.model import Policy, Site
from scheduler.errors import NotFound, no_policy
from scheduler.storage import tables as t
from scheduler.storage.sql.engine import SqlEngine


def _no_site(name: str) -> NotFound:
    return NotFound(f"no site named {name!r}: see `carbonshift site list`")


class SqlConfig(SqlEngine):
    """Policies and sites; each change bumps ``config_version`` so callers drop cached ones.

    Both are rows keyed by their name, written whole (a put replaces the row)."""

    config_version: int  # JobStore's counter

    # -- policies -------------------------------------------------------------------------
    def put_policy(self, policy: Policy) -> None:
        self._put_named(t.policies, "policy", policy)

    def get_policy(self, name: str) -> Policy:
        row = self._get_named(t.policies, "policy", name)
        if row is None:
            raise no_policy(name)
        return Policy(**row)

    def list_policies(self) -> list[Policy]:
        return [Policy(**r) for r in self._list_named(t.policies, "policies")]

    def delete_policy(self, name: str) -> None:
        if not self._delete_named(t.policies, "policy", name):
            raise no_policy(name)

    # -- sites ----------------------------------------------------------------------------
    def put_site(self, site: Site) -> None:
        self._put_named(t.sites, "site", site)

    def get_site(self, name: str) -> Site:
        row = self._get_named(t.sites, "site", name)
        if row is None:
            raise _no_site(name)
        return Site(**row)

    def list_sites(self) -> list[Site]:
        return [Site(**r) for r in self._list_named(t.sites, "sites")]

    def delete_site(self, name: str) -> None:
        if not self._delete_named(t.sites, "site", name):
            raise _no_site(name)

    # -- rows keyed by name ---------------------------------------------------------------
    def _put_named(self, table: Table, what: str, item: Any) -> None:
        self.config_version += 1  # lets callers drop cached sites and policies
        values = dataclasses.asdict(item)
        with self._tx(f"save {what} {item.name!r}") as conn:
            conn.execute(delete(table).where(table.c.name == item.name))
            conn.execute(insert(table), values)

    def _get_named(self, table: Table, what: str, name: str) -> RowMapping | None:
        with self._tx(f"read {what} {name!r}", write=False) as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        return None if row is None else row._mapping

    def _list_named(self, table: Table, what: str) -> Sequence[RowMapping]:
        with self._tx(f"list {what}", write=False) as conn:
            return [r._mapping for r in conn.execute(select(table).order_by(table.c.name)).all()]

    def _delete_named(self, table: Table, what: str, name: str) -> bool:
        """Whether a row named ``name`` was there (and is gone)."""
        self.config_version += 1  # lets callers drop cached sites and policies
        with self._tx(f"delete {what} {name!r}") as conn:
            return bool(conn.execute(delete(table).where(table.c.name == name)).rowcount)
