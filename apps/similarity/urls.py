"""``task/{id}/similar/`` and ``task/{id}/similar/status/`` and ``similar/refresh/`` on the
recognition API's tasks (mounted by config/api_urls.py)."""

from apps.core.routers import OptionalSlashRouter

from .views import SimilarityViewSet

router = OptionalSlashRouter()
# The task's basename, as apps/suggestions registers its actions beside apps/tasks' routes.
router.register("task", SimilarityViewSet, basename="task")
urlpatterns = [*router.urls]
