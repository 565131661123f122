"""agent steps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:02:30.202665
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('policy', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('allowed_domains', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))

    with op.batch_alter_table('steps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prompt', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('raw_output', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('steps', schema=None) as batch_op:
        batch_op.drop_column('raw_output')
        batch_op.drop_column('prompt')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('allowed_domains')
        batch_op.drop_column('policy')

