"""A team's labeling: images assigned to people, classification tags per image, and an
attribute schema per label class.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("assignee", sa.String(100), nullable=True))
        batch.add_column(sa.Column("tags", sa.Text, nullable=True))
        batch.create_index("ix_images_assignee", ["assignee"])
    with op.batch_alter_table("label_classes") as batch:
        batch.add_column(sa.Column("attributes", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("label_classes") as batch:
        batch.drop_column("attributes")
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_assignee")
        batch.drop_column("tags")
        batch.drop_column("assignee")
