"""team runs: run mode, plan and waits; action approvals; the plan library

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('mode', sa.String(length=10), nullable=False, server_default='direct'))
        batch.add_column(sa.Column('auto_approve', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('plan', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('wait', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('wait_deadline_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_runs_wait_deadline_at', ['wait_deadline_at'])
    op.create_table(
        'approvals',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('action', sa.JSON(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('screenshot_path', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('decided_reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_approvals_run_id', 'approvals', ['run_id'])
    op.create_table(
        'plans',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('task', sa.Text(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('source_run_id', sa.String(length=32), nullable=True),
        sa.Column('uses', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_plans_user_id', 'plans', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_plans_user_id', table_name='plans')
    op.drop_table('plans')
    op.drop_index('ix_approvals_run_id', table_name='approvals')
    op.drop_table('approvals')
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_wait_deadline_at')
        for col in ('wait_deadline_at', 'wait', 'plan', 'auto_approve', 'mode'):
            batch.drop_column(col)
