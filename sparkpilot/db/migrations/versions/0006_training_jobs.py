"""training jobs and uploaded datasets

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa



revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'training_jobs',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('method', sa.String(length=20), nullable=False),
        sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus',
                                    native_enum=False, length=20), nullable=False),
        sa.Column('phase', sa.String(length=20), nullable=True),
        sa.Column('done_phases', sa.JSON(), nullable=False),
        sa.Column('dataset', sa.JSON(), nullable=False),
        sa.Column('base', sa.String(length=200), nullable=True),
        sa.Column('hyperparameters', sa.JSON(), nullable=False),
        sa.Column('eval', sa.JSON(), nullable=False),
        sa.Column('promote', sa.String(length=10), nullable=False),
        sa.Column('progress', sa.JSON(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('adapter', sa.String(length=200), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_training_jobs_user_id', 'training_jobs', ['user_id'])
    op.create_index('ix_training_jobs_status', 'training_jobs', ['status'])
    op.create_index('ix_training_jobs_created_at', 'training_jobs', ['created_at'])
    op.create_table(
        'training_datasets',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_training_datasets_user_id', 'training_datasets', ['user_id'])


def downgrade() -> None:
    op.drop_table('training_datasets')
    op.drop_table('training_jobs')
