from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.workspaces import services


class Command(BaseCommand):
    help = "Create a user with a Default workspace and print the API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", default=None, help="Omit for a token-only user.")
        parser.add_argument("--staff", action="store_true", help="Make the user a superuser (admin login).")

    def handle(self, *args, username, email, password, staff, **options):
        try:
            _, token = services.user_create(username=username, email=email, password=password, is_staff=staff)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(token)
