from apps.core.routers import OptionalSlashRouter

from .views import LabelViewSet

router = OptionalSlashRouter()
router.register("label", LabelViewSet, basename="label")

urlpatterns = [*router.urls]
