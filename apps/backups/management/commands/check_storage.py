"""``manage.py check_storage [--fix]``: rows and stored files compared, both ways."""

import json

from django.core.management.base import BaseCommand

from apps.backups import services


class Command(BaseCommand):
    help = (
        "Compare the rows with the files in storage (images, thumbnails, model files): files no "
        "row names, and rows whose file is gone. Exits 1 when it finds either. --fix deletes the "
        "orphan files and marks images whose file is gone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="delete orphan files, mark rows whose file is gone"
        )
        parser.add_argument(
            "--min-age",
            type=float,
            default=3600.0,
            help="seconds a file without a row must be old to count as an orphan (uploads in flight "
            "store the file just before the row); default 3600",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, fix, min_age, as_json: bool, **options):
        self.verbosity = options["verbosity"]
        report = services.storage_check(fix=fix, min_age=min_age, progress=self._progress)
        if as_json:
            self.stdout.write(json.dumps(_as_dict(report), indent=1))
        else:
            self.stdout.write(
                f"{report.checked_files:,} stored files checked: {len(report.orphan_files):,} without a row, "
                f"{len(report.missing):,} rows without their file."
            )
            for name in report.orphan_files:
                self.stdout.write(f"orphan file: {name}")
            for row in report.missing:
                self.stdout.write(f"missing file: {row['kind']} {row['id']}: {row['name']}")
        if not report.clean and not fix:
            raise SystemExit(1)

    def _progress(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stderr.write(message)


def _as_dict(report: services.StorageReport) -> dict:
    return {
        "checked_files": report.checked_files,
        "orphan_files": report.orphan_files,
        "missing": report.missing,
        "fixed": report.fixed,
        "clean": report.clean,
    }
