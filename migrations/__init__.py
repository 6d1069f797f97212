"""botcore's alembic environment: env.py, the revision template and versions/.

Run it through ``botcore-db`` (or `botcore.db.migrate`), which builds alembic's configuration
in code; there is no alembic.ini."""
