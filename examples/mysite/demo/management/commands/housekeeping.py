"""A small background job that runs beside the site as an attached daemon (dragoman.ini:
``attach-daemon = python manage.py housekeeping``): every minute it keeps the guestbook to its
newest messages and says how many there are. dragoman starts it with the site, starts it again
if it dies, restarts it on a reload, and stops it (SIGTERM) with the site; what it prints is in
dragoman's log, each line marked with its name and pid."""

import signal
import time

from django.core.management.base import BaseCommand

from demo.models import Message


class Command(BaseCommand):
    help = "Keep the guestbook to its newest messages, every --every seconds, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=60.0, help="seconds between rounds")
        parser.add_argument("--keep", type=int, default=500, help="messages to keep")
        parser.add_argument(
            "--rounds", type=int, default=0, help="stop after this many rounds (0: never)"
        )

    def handle(self, *args, every, keep, rounds, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.say(f"housekeeping: every {every:g}s, keeping the newest {keep} messages")
        done = 0
        while not stopping:
            old = Message.objects.order_by("-created", "-id").values_list("id", flat=True)[keep:]
            removed, _ = Message.objects.filter(id__in=list(old)).delete()
            self.say(f"housekeeping: {Message.objects.count()} message(s), {removed} removed")
            done += 1
            if rounds and done >= rounds:
                break
            deadline = time.monotonic() + every
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.5, every))
        self.say("housekeeping: stopped")

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
