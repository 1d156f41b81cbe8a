"""The example site's attached daemon (examples/mysite/dragoman.ini: `attach-daemon = python
manage.py housekeeping`): started with the site, its lines in the log with its name and pid,
stopped with it; and what the command does, run once by hand."""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

SITE = REPO / "examples" / "mysite"


@pytest.fixture
def site_env(tmp_path):
    env = {
        "DJANGO_DB_PATH": str(tmp_path / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    manage(env, "migrate", "--noinput", "-v", "0")
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SITE,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


def test_the_example_runs_its_housekeeping_daemon(dragoman, site_env):
    server = dragoman("--ini", str(SITE / "dragoman.ini"), env=site_env, workers=2, cwd=SITE)
    m = server.wait_for_log(
        r"python manage.py housekeeping\[(\d+)\]: housekeeping: 0 message\(s\), 0 removed",
        timeout=30,
    )
    pid = int(m.group(1))
    assert server.stop() == 0
    text = server.log()
    assert f"python manage.py housekeeping[{pid}]: housekeeping: stopped" in text
    assert re.search(
        rf"daemon \"python manage.py housekeeping\" \(pid {pid}\) exited with code 0", text
    )


def test_housekeeping_keeps_the_newest_messages(site_env):
    manage(
        site_env,
        "shell",
        "-c",
        "from demo.models import Message\n"
        "for i in range(5): Message.objects.create(name='t', text=str(i))",
    )
    out = manage(site_env, "housekeeping", "--rounds", "1", "--keep", "2")
    assert "housekeeping: 2 message(s), 3 removed" in out, out
