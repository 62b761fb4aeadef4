"""Alembic environment for the migrate tests: the URL from MIGRATION_DATABASE_URL; a
`postgresql+asyncpg://` URL runs the migration through SQLAlchemy's asyncio engine (asyncpg
ignores PGOPTIONS and PGAPPNAME), any other through a plain engine (psycopg2, on libpq)."""

import asyncio
import os

from alembic import context
from sqlalchemy import create_engine, pool

URL = os.environ["MIGRATION_DATABASE_URL"]


def run(connection):
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async():
    from sqlalchemy.ext.asyncio import create_async_engine
    engine = create_async_engine(URL, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


if URL.startswith("postgresql+asyncpg"):
    asyncio.run(run_async())
else:
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run(connection)
