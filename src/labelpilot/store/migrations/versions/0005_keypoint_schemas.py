"""A label class may carry a keypoint schema (its keypoints' names and skeleton, as COCO's
person_keypoints categories do).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("label_classes") as batch:
        batch.add_column(sa.Column("keypoints", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("label_classes") as batch:
        batch.drop_column("keypoints")
