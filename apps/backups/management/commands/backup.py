"""``manage.py backup PATH``: the whole install (rows and stored files) as one archive."""

from django.core.management.base import BaseCommand, CommandError

from apps.backups import services


class Command(BaseCommand):
    help = (
        "Write a backup of every row and stored file (local or S3) to the archive PATH, with a "
        "manifest of counts and SHA-256 sums. PATH ending in .gz or .tgz is gzip-compressed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the archive to write, e.g. backups/visionforge-2026-12-06.tar")

    def handle(self, *args, path, **options):
        self.verbosity = options["verbosity"]
        try:
            summary = services.backup_create(path=path, progress=self._progress)
        except services.BackupError as exc:
            raise CommandError(exc.message) from exc
        left_out = summary.skipped.get("images", []) + summary.skipped.get("versions", [])
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written to {summary.path}: {sum(summary.rows.values()):,} rows, "
                f"{summary.files:,} files, {summary.bytes:,} bytes in {summary.seconds:.1f} s."
            )
        )
        if left_out:
            self.stdout.write(f"Left out (deleted while the backup ran): {len(left_out)} images or versions.")

    def _progress(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stderr.write(message)
