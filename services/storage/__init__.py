"""PostgreSQL storage: tables, engine, unit of work and repositories."""
