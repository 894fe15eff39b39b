"""Images sort by name as people read names (img_2 before img_10): a sort key beside the
file name, filled in for the images already there.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from labelpilot.store.names import natural_key

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("name_key", sa.String(1000), nullable=True))
        batch.create_index("ix_images_name_key", ["name_key"])
    conn = op.get_bind()
    images = sa.table("images", sa.column("id", sa.Integer), sa.column("file_name", sa.String),
                      sa.column("name_key", sa.String))
    rows = conn.execute(sa.select(images.c.id, images.c.file_name)).all()
    for start in range(0, len(rows), 1000):
        conn.execute(images.update().where(images.c.id == sa.bindparam("image_id"))
                     .values(name_key=sa.bindparam("key")),
                     [{"image_id": i, "key": natural_key(n)} for i, n in rows[start:start + 1000]])


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_name_key")
        batch.drop_column("name_key")
