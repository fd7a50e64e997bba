"""The console's views: each reads through a selector or calls one service (apps/console/tenancy.py
scopes them to the current workspace)."""
