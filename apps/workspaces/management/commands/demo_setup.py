from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.workspaces import services


class Command(BaseCommand):
    help = "Create (once) the demo user and print its token and the service's URLs."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--base-url", default=settings.VF_PUBLIC_URL)

    def handle(self, *args, username, password, base_url, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            user, token = services.user_create(
                username=username, email=f"{username}@localhost", password=password, is_staff=True
            )
        else:
            services.workspace_ensure_default(user=user)
            token = services.token_get_or_create(user=user)
        base = base_url.rstrip("/")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Demo user:   {username} / {password}   (console and admin login)",
                    f"Console:     {base}/console/",
                    f"API token:   {token}",
                    f"API:         {base}/recognition/v2/   and   {base}/v2/",
                    f"Swagger UI:  {base}/api/docs/",
                    f"Schema:      {base}/api/schema/",
                    f"Admin:       {base}/admin/",
                    f"Health:      {base}/health",
                    f"Try:         curl -H 'Authorization: Token {token}' {base}/account/v2/workspace/",
                    "",
                ]
            )
        )
