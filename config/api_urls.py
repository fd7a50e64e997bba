"""Routes of the recognition API, mounted under /recognition/v2/ and /v2/ by config/urls.py."""

urlpatterns: list = []
