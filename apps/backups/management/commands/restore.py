"""``manage.py restore PATH``: a backup archive onto an empty install."""

from django.core.management.base import BaseCommand, CommandError

from apps.backups import services


class Command(BaseCommand):
    help = (
        "Restore the backup archive PATH onto this install, which must be empty (a new database "
        "after `manage.py migrate`, an empty media storage). The archive is checked against its "
        "manifest first; a damaged one is refused and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive written by `manage.py backup`")

    def handle(self, *args, path, **options):
        self.verbosity = options["verbosity"]
        try:
            counts = services.backup_restore(path=path, progress=self._progress)
        except services.BackupError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Restored {sum(counts.values()):,} rows from {path}."))

    def _progress(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stderr.write(message)
