"""Precompressed variants (`x.css.br`, `x.css.gz`) are served in place of `x.css` only when
`dragoman compress` made them from the file as it is now: inside the mount (symlinks obey the
mount's rules), not older than the file, and listed in the directory's manifest with the
file's size and SHA-256. Anything else (a symlink out of the mount, a `.gz` uploaded next to a
media file, a variant left over from the previous deploy, a tampered one) is never sent; the
file itself is. Real files, the real `dragoman compress`, real clients."""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO

CSS = "body { color: #123456; margin: 0 auto; }\n" * 400
MANIFEST = ".dragoman-variants"


def compress(path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dragoman", "compress", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout


def fetch(server, path: str, accept: str, headers: dict | None = None):
    """(status, content-encoding, the bytes as sent, etag): variants are read undecoded."""
    with httpx.stream(
        "GET", f"{server.url}{path}", headers={"Accept-Encoding": accept, **(headers or {})}
    ) as r:
        return (
            r.status_code,
            r.headers.get("content-encoding"),
            b"".join(r.iter_raw()),
            r.headers.get("etag"),
        )


@pytest.fixture
def static(tmp_path) -> Path:
    d = tmp_path / "static"
    d.mkdir()
    (d / "app.css").write_text(CSS)
    (d / "big.css").write_text(CSS * 10)  # over 16 KiB: sent from the file, not memory
    compress(d)
    assert (d / "app.css.gz").is_file() and (d / "big.css.br").is_file()
    assert (d / MANIFEST).is_file()
    return d


def serve(dragoman, static: Path, env: dict | None = None):
    return dragoman("rules:application", "--static-map", f"/static={static}", env=env)


def test_variants_made_by_compress_are_served_with_their_own_etags(dragoman, static):
    server = serve(dragoman, static)
    for name in ("app.css", "big.css"):
        plain = fetch(server, f"/static/{name}", "identity")
        gz = fetch(server, f"/static/{name}", "gzip")
        br = fetch(server, f"/static/{name}", "gzip, deflate, br")
        assert plain[:3] == (200, None, (static / name).read_bytes())
        assert gz[:3] == (200, "gzip", (static / f"{name}.gz").read_bytes())
        assert br[:3] == (200, "br", (static / f"{name}.br").read_bytes())
        assert gzip.decompress(gz[2]) == (static / name).read_bytes()
        assert len({plain[3], gz[3], br[3]}) == 3, "one ETag per representation"
        # Each tag validates its own representation only.
        assert fetch(server, f"/static/{name}", "gzip", {"If-None-Match": gz[3]})[0] == 304
        assert fetch(server, f"/static/{name}", "gzip", {"If-None-Match": plain[3]})[0] == 200
        assert fetch(server, f"/static/{name}", "identity", {"If-None-Match": gz[3]})[0] == 200


def test_static_gzip_all_false_serves_only_the_files(dragoman, static):
    server = serve(dragoman, static, env={"DRAGOMAN_STATIC_GZIP_ALL": "false"})
    assert fetch(server, "/static/app.css", "gzip, br")[:3] == (200, None, CSS.encode())


def test_a_variant_symlinked_out_of_the_mount_is_not_served(dragoman, static, tmp_path):
    """`big.css.gz -> /outside/...` obeys the rules that guard `big.css`: a symlink out of the
    mount is not followed, even when it leads to the genuine variant."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.gz").write_bytes(gzip.compress(b"TOP SECRET"))
    shutil.move(static / "big.css.gz", outside / "big.css.gz")  # the genuine one, moved out
    (static / "big.css.gz").symlink_to(outside / "big.css.gz")
    (static / "app.css.gz").unlink()
    (static / "app.css.gz").symlink_to(outside / "secret.gz")
    server = serve(dragoman, static)
    for name in ("app.css", "big.css"):
        status, coding, body, _ = fetch(server, f"/static/{name}", "gzip")
        assert (status, coding) == (200, None), name
        assert body == (static / name).read_bytes()
        assert b"TOP SECRET" not in body


def test_a_variant_nobody_made_is_never_served(dragoman, tmp_path):
    """Whoever can write `victim.html.gz` into a media folder must not replace `victim.html`
    for every browser: without dragoman's manifest, no variant is served; with a manifest that
    does not list it (compress ran before the upload), neither."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "victim.html").write_text("<p>the real page</p>" * 50)
    (media / "victim.html.gz").write_bytes(gzip.compress(b"<script>evil()</script>"))
    (media / "victim.html.br").write_bytes(b"not brotli at all")
    (media / "x.txt").write_text("x" * 1000)
    (media / "x.txt.zst").write_bytes(b"z" * 20)  # smaller than everything: would win
    server = dragoman("rules:application", "--static-map", f"/media={media}")
    for name in ("victim.html", "x.txt"):
        status, coding, body, _ = fetch(server, f"/media/{name}", "gzip, br, zstd")
        assert (status, coding, body) == (200, None, (media / name).read_bytes()), name

    other = tmp_path / "other"
    other.mkdir()
    (other / "legit.css").write_text(CSS)
    compress(other)
    (other / "victim.html").write_text("<p>the real page</p>" * 50)
    (other / "victim.html.gz").write_bytes(gzip.compress(b"<script>evil()</script>"))
    server = dragoman("rules:application", "--static-map", f"/other={other}")
    assert fetch(server, "/other/legit.css", "gzip")[1] == "gzip"
    status, coding, body, _ = fetch(server, "/other/victim.html", "gzip")
    assert (status, coding, body) == (200, None, (other / "victim.html").read_bytes())


def test_a_tampered_variant_is_not_served(dragoman, static):
    evil = gzip.compress(b"body { background: url(//evil.example/x) }")
    (static / "app.css.gz").write_bytes(evil)
    with open(static / "big.css.br", "r+b") as f:  # in place: same inode, same size
        f.seek(100)
        f.write(b"\0" * 10)
    server = serve(dragoman, static)
    assert fetch(server, "/static/app.css", "gzip")[:3] == (200, None, CSS.encode())
    assert fetch(server, "/static/big.css", "br")[:3] == (200, None, (CSS * 10).encode())
    # The untouched variants still are.
    assert fetch(server, "/static/app.css", "br")[1] == "br"
    assert fetch(server, "/static/big.css", "gzip")[1] == "gzip"


def test_a_variant_older_than_a_new_original_is_not_served(dragoman, static):
    """A new deploy replaces app.css; the .gz of the old one must not be sent under the new
    file's ETag. `dragoman compress` makes the variants again; a file copied again with the
    same content gets its variants back without compressing anything."""
    server = serve(dragoman, static)
    old_gz = fetch(server, "/static/app.css", "gzip")
    assert old_gz[1] == "gzip"
    new = CSS.replace("#123456", "#abcdef")
    (static / "app.css").write_text(new)
    later = (static / "app.css.gz").stat().st_mtime + 10
    os.utime(static / "app.css", (later, later))
    deadline = time.monotonic() + 5
    while (now := fetch(server, "/static/app.css", "gzip, br"))[1] is not None:
        assert time.monotonic() < deadline, "the stale variant is still served"
        time.sleep(0.1)
    assert now[2] == new.encode()
    assert now[3] == fetch(server, "/static/app.css", "identity")[3] != old_gz[3]

    compress(static)
    deadline = time.monotonic() + 5
    while (gz := fetch(server, "/static/app.css", "gzip"))[1] != "gzip":
        assert time.monotonic() < deadline, "the new variant is not served"
        time.sleep(0.1)
    assert gzip.decompress(gz[2]) == new.encode() and gz[3] != old_gz[3]

    # The same content copied again (a newer mtime): the variants are older than the file,
    # so not served, until compress vouches for them again (without recompressing).
    before = (static / "app.css.br").read_bytes()
    later += 100
    os.utime(static / "app.css", (later, later))
    time.sleep(1.1)
    assert fetch(server, "/static/app.css", "br")[1] is None
    out = compress(static)
    assert "1 refreshed" in out, out
    assert (static / "app.css.br").read_bytes() == before
    deadline = time.monotonic() + 5
    while fetch(server, "/static/app.css", "br")[1] != "br":
        assert time.monotonic() < deadline, "the refreshed variant is not served"
        time.sleep(0.1)


def test_the_manifest_records_the_originals_identity(static):
    """One line per variant: the file it was made from (size and SHA-256) and the variant's
    own size and SHA-256."""
    lines = [
        line for line in (static / MANIFEST).read_text().splitlines() if not line.startswith("#")
    ]
    records = {tuple(line.split(" ")[:2]): line.split(" ")[2:] for line in lines}
    for name in ("app.css", "big.css"):
        data = (static / name).read_bytes()
        for coding, suffix in (("br", ".br"), ("gzip", ".gz")):
            variant = (static / (name + suffix)).read_bytes()
            assert records[(name, coding)] == [
                str(len(data)),
                hashlib.sha256(data).hexdigest(),
                str(len(variant)),
                hashlib.sha256(variant).hexdigest(),
            ]


def test_the_example_site_serves_its_precompressed_files(dragoman, tmp_path):
    """What `make run` does (collectstatic, then `dragoman compress`), served by the example's
    own dragoman.ini: the admin's stylesheet goes out as brotli."""
    site = REPO / "examples" / "mysite"
    env = {
        "DJANGO_DB_PATH": str(tmp_path / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=site,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    static = tmp_path / "static"
    subprocess.run(
        [sys.executable, "-m", "dragoman", "compress", "--quiet", str(static)],
        check=True,
        timeout=300,
    )
    server = dragoman(
        "--ini",
        str(site / "dragoman.ini"),
        "--static-map",
        f"/static={static}",
        env=env,
        workers=2,
        cwd=site,
    )
    css = (static / "admin" / "css" / "base.css").read_bytes()
    status, coding, body, _ = fetch(server, "/static/admin/css/base.css", "gzip, deflate, br")
    assert (status, coding) == (200, "br")
    assert body == (static / "admin" / "css" / "base.css.br").read_bytes() != css
    r = httpx.get(f"{server.url}/static/admin/css/base.css", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.content == css
