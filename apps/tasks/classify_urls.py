from apps.workspaces.routers import OptionalSlashRouter

router = OptionalSlashRouter()

urlpatterns = [*router.urls]
