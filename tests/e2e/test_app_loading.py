"""How the application is loaded: a factory (`pkg:create_app()`) is called once per process
that loads the application, and `pyargv` is the application's sys.argv[1:]."""

import httpx
from conftest import APPS


def test_a_factory_is_called_once_and_its_result_served(dragoman):
    server = dragoman("factory_app:create_app()", "--processes", "2", workers=2)
    pids = set()
    for _ in range(20):
        data = httpx.get(server.url).json()
        assert data["calls"] == 1
        pids.add(data["pid"])
    assert len(pids) == 2


def test_a_factory_with_preload_runs_in_the_master_only(dragoman):
    server = dragoman("factory_app:create_app()", "--preload", "--processes", "2", workers=2)
    data = httpx.get(server.url).json()
    assert data["calls"] == 1 and data["pid"] != server.proc.pid


def test_a_factory_named_in_an_ini_file(dragoman, tmp_path):
    ini = tmp_path / "site.ini"
    ini.write_text(f"[uwsgi]\nchdir = {APPS}\nmodule = factory_app:create_app()\n")
    server = dragoman("--ini", str(ini))
    assert httpx.get(server.url).json()["calls"] == 1
    assert "not in effect" not in server.log(), server.log()


def test_a_factory_that_returns_no_application_is_a_boot_error(dragoman):
    server = dragoman("factory_app:not_a_factory()", wait=False)
    assert server.proc.wait(30) == 1
    text = server.log()
    assert "factory_app:not_a_factory() returned 42 (int)" in text, text


def test_pyargv_is_the_applications_argv(dragoman):
    server = dragoman("factory_app:create_app()", "--pyargv", "-c /etc/site.conf  --debug")
    argv = httpx.get(server.url).json()["argv"]
    assert argv[1:] == ["-c", "/etc/site.conf", "--debug"], argv
