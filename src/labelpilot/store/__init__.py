"""Persistence: SQLAlchemy tables (`tables`), Alembic migrations, bulk queries (`repo`),
engines (`db`), content-addressed image blobs read back as pixels (`blobs`). Imports the
annotation vocabulary and errors only."""
