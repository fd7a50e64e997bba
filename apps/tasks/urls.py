from apps.core.routers import OptionalSlashRouter

from .views import TaskViewSet

router = OptionalSlashRouter()
router.register("task", TaskViewSet, basename="task")

urlpatterns = [*router.urls]
