"""``model/`` and ``task/{id}/train/``: mounted under both API prefixes by config/api_urls.py."""

from apps.core.routers import OptionalSlashRouter

from .views import ModelVersionViewSet, TaskTrainViewSet

router = OptionalSlashRouter()
router.register("model", ModelVersionViewSet, basename="model")
# Only the train action: the task's other routes are apps/tasks/urls.py's (the same basename, so
# the route's name stays "task-train").
router.register("task", TaskTrainViewSet, basename="task")

urlpatterns = [*router.urls]
