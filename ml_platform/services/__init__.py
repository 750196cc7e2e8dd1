"""Services: writes (keyword-only) and the Django-side glue views, the API and the worker share.

connections, jobs, workspaces (members, datasets, API tokens) and audit write; schema_check is the one schema
decision; sources and warehouse reach the source databases and BigQuery; compat and verification serve the
report and the Verify panel. Callers import the submodule that defines a name; nothing is re-exported here.
"""
