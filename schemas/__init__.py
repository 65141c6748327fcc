"""Declarations: settings, catalog models, tables, migrations, geodesy. Imports nothing of ours."""
