"""saved agents and their versions; runs name the agent version they used

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agents',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'name'),
    )
    op.create_index('ix_agents_user_id', 'agents', ['user_id'])
    op.create_table(
        'agent_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('agent_id', 'version'),
    )
    op.create_index('ix_agent_versions_agent_id', 'agent_versions', ['agent_id'])
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('agent_id', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('agent_version', sa.Integer(), nullable=True))
        batch.create_index('ix_runs_agent_id', ['agent_id'])


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_agent_id')
        batch.drop_column('agent_version')
        batch.drop_column('agent_id')
    op.drop_index('ix_agent_versions_agent_id', table_name='agent_versions')
    op.drop_table('agent_versions')
    op.drop_index('ix_agents_user_id', table_name='agents')
    op.drop_table('agents')
