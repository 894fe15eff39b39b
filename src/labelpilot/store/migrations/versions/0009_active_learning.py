"""Active learning: the labeling queue's order (a selection's rank and reason per image),
informativeness scores per image and model version, and cached image embeddings.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNRANKED = 2_000_000_000


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("queue_rank", sa.Integer, nullable=False,
                                   server_default=str(UNRANKED)))
        batch.add_column(sa.Column("queue_reason", sa.Text, nullable=True))
        batch.create_index("ix_images_queue_rank", ["queue_rank"])
    op.create_table(
        "image_scores",
        sa.Column("image_id", sa.Integer,
                  sa.ForeignKey("images.id", ondelete="CASCADE",
                                name="fk_image_scores_image_id_images"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("parts", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_id", "model", name="pk_image_scores"),
    )
    op.create_table(
        "embeddings",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("sha256", "model", name="pk_embeddings"),
    )


def downgrade() -> None:
    op.drop_table("embeddings")
    op.drop_table("image_scores")
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_queue_rank")
        batch.drop_column("queue_reason")
        batch.drop_column("queue_rank")
