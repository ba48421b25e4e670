"""Due dates: ``grade-all --due 2026-12-01T23:59+08:00 [--late-penalty 10] [--late-cap 100]``.

The rule: a submission handed in after the due time loses ``late-penalty`` percent of the
points it earned for every day or part of a day it is late, at most ``late-cap`` percent
(10 and 100 by default: one minute late loses 10 %, 24 h 1 min late 20 %, ten days or more
everything). On time loses nothing.

When a student handed in is read from ``--submitted FILE.csv`` (a header, then one row per
student: ``student,submitted`` with an ISO 8601 time such as ``2026-12-02T08:30:00+08:00``,
as a learning platform's export gives it), else from the latest modification time of the
student's graded files (what a download keeps, if it keeps anything: check it). A time
without a UTC offset is read as UTC.
"""

import csv
import io
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scratchlm.errors import FileFormatError
from scratchlm.exercises.harness import NotGradable
from scratchlm.file_reading import read_file_bytes

#: percent of the earned points lost per day or part of a day late
DEFAULT_PENALTY = 10.0
#: at most this percent is lost
DEFAULT_CAP = 100.0
DAY = timedelta(days=1)
#: a --submitted CSV larger than this is refused (one line per student: a few kB)
SUBMITTED_LIMIT = 16 * 2**20


@dataclass(frozen=True)
class Lateness:
    submitted: datetime | None
    days_late: int
    #: percent of the earned points lost
    penalty: float


def parse_time(text, what):
    """An ISO 8601 time as an aware datetime (UTC when it names no offset)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise NotGradable(f"{what} {text!r} is not a time: write it as ISO 8601, e.g. "
                          "2026-12-01T23:59+08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_rule(penalty, cap):
    """The percentages of the rule, each a finite number from 0 to 100."""
    for option, value in (("--late-penalty", penalty), ("--late-cap", cap)):
        if not (isinstance(value, (int, float)) and math.isfinite(value)
                and 0 <= value <= 100):
            raise NotGradable(f"{option} {value!r} is not a percentage: give a number from 0 "
                              "to 100")
    return float(penalty), float(cap)


def read_submitted(path):
    """{student: submission time} from a CSV with the columns ``student`` and
    ``submitted``."""
    path = Path(path)
    try:  # a FIFO or a device is refused, not read forever
        raw = read_file_bytes(path, "--submitted", "CSV of submission times",
                              limit=SUBMITTED_LIMIT)
    except FileFormatError as error:
        raise NotGradable(f"{error}; give a CSV with the columns student,submitted") from None
    try:
        table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error) as error:
        raise NotGradable(f"--submitted {path} cannot be read as CSV text ("
                          f"{type(error).__name__}: {str(error)[:100]}); give a UTF-8 CSV "
                          "with the columns student,submitted") from None
    if not table or not {"student", "submitted"} <= set(table[0]):
        raise NotGradable(f"--submitted {path} needs a header with the columns student and "
                          "submitted (an ISO 8601 time), one row per student")
    return {row["student"].strip(): parse_time(row["submitted"], f"--submitted {path}: "
                                               f"{row['student']}'s time")
            for row in table if row["student"] and row["submitted"]}


def _mtime(path):
    """When ``path`` was last modified: what it links to, or the link itself when that is
    gone."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return os.lstat(path).st_mtime


def modified(files):
    """The latest modification time of ``files`` (paths), or None when there are none."""
    times = [_mtime(path) for path in files]
    return datetime.fromtimestamp(max(times), timezone.utc) if times else None


def lateness(submitted, due, penalty=DEFAULT_PENALTY, cap=DEFAULT_CAP):
    """How late ``submitted`` is for ``due`` and the percent it loses by the rule."""
    if submitted is None or submitted <= due:
        return Lateness(submitted, 0, 0.0)
    days = math.ceil((submitted - due) / DAY)
    return Lateness(submitted, days, min(cap, days * penalty))
