"""Persistence: peewee models, migrations, raw and attachment stores."""
