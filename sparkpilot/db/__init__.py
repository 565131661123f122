"""Database tables and sessions (SQLAlchemy 2.0)."""
