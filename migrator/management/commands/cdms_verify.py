"""``manage.py cdms_verify [app_label.Model ...] [--fix]``."""

from django.core.management.base import BaseCommand, CommandError

from cdms_api.errors import CDMSError
from migrator.management.resolve import synced_models_named
from migrator.verify import Difference, Report, UnorderedRead, verify


class Command(BaseCommand):
    help = (
        "Compare synced models' local rows with the CRM's records, field by field: rows "
        "missing on either side, differing values (side by side), stale ETags; a summary per "
        "model. Exits non-zero when any drift is found. --fix repairs the local side. Every "
        "synced model when none is named."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", metavar="app_label.Model")
        parser.add_argument(
            "--fix", action="store_true", help="repair what differs (the local side)"
        )

    def handle(self, *args, models: list[str], fix: bool, **options) -> None:
        drifted, failed = [], []
        for model in synced_models_named(models):
            try:
                report = verify(model, fix=fix)
            except (CDMSError, UnorderedRead) as error:
                failed.append(model._meta.label)
                self.stdout.write(f"{model._meta.label}: failed: {type(error).__name__}: {error}")
                continue
            self.stdout.write(report.summary())
            if options["verbosity"] > 0:
                self.show(report)
            if report.drift:
                drifted.append(report.model)
        if failed:
            raise CommandError(f"some verifies failed: {', '.join(failed)}")
        if drifted:
            raise CommandError(f"drift found in {', '.join(drifted)}")

    def show(self, report: Report) -> None:
        for difference in report.differences:
            self.stdout.write(f"  {difference.kind:<16} {difference.key}")
            for line in side_by_side(difference):
                self.stdout.write(f"      {line}")
        hidden = report.drift - len(report.differences)
        if hidden > 0:
            self.stdout.write(f"  ... and {hidden} more")


def side_by_side(difference: Difference) -> list[str]:
    """``field  local | remote``, the columns aligned."""
    rows = [(name, repr(mine), repr(theirs)) for name, (mine, theirs) in difference.fields.items()]
    if not rows:
        return []
    rows.insert(0, ("field", "local", "remote"))
    name_w = max(len(r[0]) for r in rows)
    local_w = max(len(r[1]) for r in rows)
    return [f"{n:<{name_w}}  {mine:<{local_w}} | {theirs}" for n, mine, theirs in rows]
