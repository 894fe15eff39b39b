"""Persistence: SQLAlchemy tables, Alembic migrations, content-addressed image blobs."""
