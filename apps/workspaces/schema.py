"""drf-spectacular hooks."""


def drop_alias_paths(endpoints, **kwargs):
    """Describe each operation once.

    ``/v2/...`` repeats ``/recognition/v2/...`` and ``/account/v2/details`` repeats ``/user``; the
    schema lists the canonical path only (aliases would otherwise collide on operation ids).
    """
    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if not path.startswith("/v2/") and not path.startswith("/account/v2/details")
    ]
