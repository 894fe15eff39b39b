"""Persistence, and the only package that imports SQLAlchemy and Alembic: tables
(`tables`), migrations, engines (`db`), queries per table (`images`, `annotations`,
`users`, `jobs`, `audit`), bulk reads and writes for imports, exports and stats (`repo`),
content-addressed image blobs read back as pixels (`blobs`). Imports the annotation
vocabulary, settings and errors only."""
