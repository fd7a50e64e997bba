"""What each scope allows, by the kind of route and the method.

Routes are of four kinds, named by the view's ``access_kind`` (apps/workspaces/tenancy.py sets
it on the tenancy base viewset): ``data`` (a workspace's tasks, labels, images, models, objects,
suggestions), ``predict`` (classify/ and detect/), ``owner`` (the workspace's webhooks, which only
its owner manages: their URLs may hold a receiver's own secrets), and anything else, the account
(workspaces, members, tokens, the audit log, the user), which no scoped token may use.

- read-only: safe methods (GET, HEAD, OPTIONS) on data routes;
- classify-only: the predict routes only (POST classify/, detect/, /v1/classify/): a client that
  classifies needs nothing else, and reading the workspace is read-only's job;
- full: every data, predict and owner route of its workspace.
"""

from __future__ import annotations

from .models import ScopedToken

Scope = ScopedToken.Scope

ACCESS_DATA = "data"
ACCESS_PREDICT = "predict"
ACCESS_OWNER = "owner"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

MSG_REFUSED = {
    Scope.READ_ONLY: "This token's scope is read-only: it reads its workspace (GET) and changes nothing.",
    Scope.CLASSIFY_ONLY: "This token's scope is classify-only: it may call classify/ and detect/ only.",
    Scope.FULL: (
        "This token's scope is full: it acts on its workspace's tasks, labels, images, models and "
        "predictions, not on the account (workspaces, members, tokens, the audit log)."
    ),
}
MSG_OWNER = (
    "This token's scope is {scope}: the workspace's webhooks are managed with a full-scope token or "
    "the owner's own."
)
MSG_ACCOUNT = (
    "A scoped token (scope {scope}) cannot manage the account (workspaces, members, tokens, the audit "
    "log): use the owner's own token."
)


def scope_allows(*, scope: str, access: str | None, method: str) -> bool:
    if access == ACCESS_PREDICT:
        return scope in (Scope.CLASSIFY_ONLY, Scope.FULL)
    if access == ACCESS_DATA:
        return scope == Scope.FULL or (scope == Scope.READ_ONLY and method in SAFE_METHODS)
    if access == ACCESS_OWNER:
        return scope == Scope.FULL
    return False


def scope_refusal(*, scope: str, access: str | None) -> str:
    if access in (ACCESS_DATA, ACCESS_PREDICT):
        return MSG_REFUSED[scope]
    if access == ACCESS_OWNER:
        return MSG_OWNER.format(scope=scope)
    return MSG_ACCOUNT.format(scope=scope)
