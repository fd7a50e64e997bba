from apps.core.routers import OptionalSlashRouter

from .views import TrainingImageViewSet

router = OptionalSlashRouter()
router.register("training-image", TrainingImageViewSet, basename="training-image")

urlpatterns = [*router.urls]
