"""Analytics: a perceptual hash per image content, for near-duplicate images.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_hashes",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("dhash", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_image_hashes"),
    )


def downgrade() -> None:
    op.drop_table("image_hashes")
