"""An image is a named item; its bytes are a blob that several images may share (two
items with identical bytes stay two images, each with its own labels and split). The
unique constraint on `images.sha256` becomes a plain index.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_constraint("uq_images_sha256", type_="unique")
        batch.create_index("ix_images_sha256", ["sha256"])


def downgrade() -> None:
    # Fails (IntegrityError) while two images share their bytes: merge or delete them first.
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_sha256")
        batch.create_unique_constraint("uq_images_sha256", ["sha256"])
