"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor.storage.db import _alembic_config
from monitor.storage.models import Base


def test_migrated_schema_matches_the_models(db):
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert "meta" not in inspect(conn).get_table_names()  # dropped by 0008: nothing used it


def test_drop_meta_downgrades_and_upgrades_again(db):
    cfg = _alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008-1")
        assert "meta" in inspect(conn).get_table_names()
        command.upgrade(cfg, "0008")
        assert "meta" not in inspect(conn).get_table_names()
