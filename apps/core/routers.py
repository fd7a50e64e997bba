from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with and without the trailing slash (the Ximilar client calls both)."""

    def __init__(self):
        super().__init__()
        # SimpleRouter's constructor only knows "/" or "": set the optional form afterwards.
        self.trailing_slash = "/?"
