"""Alembic environment for carbonshift's schema.

Run programmatically by :func:`scheduler.storage.store.open_store` (no ``alembic.ini``):
the caller puts an open SQLAlchemy ``Connection`` in ``config.attributes["connection"]``,
usually already inside the transaction that holds the migration lock, and the migrations
run on it. Offline (``--sql``) mode renders SQL for the URL in ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from scheduler.storage.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_offline() -> None:
    """Emit SQL for ``sqlalchemy.url`` without a database (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on the connection the caller passed in ``config.attributes``."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "carbonshift migrations need a connection in config.attributes['connection']; "
            "run them with `carbonshift db upgrade`"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        # ``db upgrade``'s progress bar, when it asked for one
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
