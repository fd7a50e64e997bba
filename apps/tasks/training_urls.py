"""``task/{id}/train/`` and ``model/``: mounted under both API prefixes by config/api_urls.py."""

from apps.workspaces.routers import OptionalSlashRouter

from .training_views import ModelVersionViewSet, TaskTrainViewSet

router = OptionalSlashRouter()
# Only the train action: the router makes no list/detail routes for a viewset without those
# mixins, so the task CRUD router (apps/tasks/urls.py) keeps task/ and task/{id}.
router.register("task", TaskTrainViewSet, basename="task-train")
router.register("model", ModelVersionViewSet, basename="model")

urlpatterns = [*router.urls]
