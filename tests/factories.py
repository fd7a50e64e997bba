import factory
from django.contrib.auth import get_user_model

from apps.workspaces import services


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")

    @factory.post_generation
    def default_workspace(self, create, extracted, **kwargs):
        if create:
            self.save()
            services.workspace_ensure_default(user=self)


class TaskFactory(factory.django.DjangoModelFactory):
    """A multi_class task; pass ``workspace=``. Made through the ORM (no negative label)."""

    class Meta:
        model = "tasks.Task"

    name = factory.Sequence(lambda n: f"task {n}")
    owner = factory.LazyAttribute(lambda task: task.workspace.owner)


class LabelFactory(factory.django.DjangoModelFactory):
    """A category label; pass ``workspace=``."""

    class Meta:
        model = "labels.Label"

    name = factory.Sequence(lambda n: f"label {n}")
