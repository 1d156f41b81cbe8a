"""Views of the dragoman demo app.

Each view exercises a different part of the WSGI contract:

* ``index``    -- template rendering, sessions/CSRF cookies, form POST + redirect
* ``upload``   -- multipart request bodies (``wsgi.input``), file storage
* ``stream``   -- ``StreamingHttpResponse`` (iterable body, no Content-Length)
* ``api``      -- JSON request/response bodies, query strings, the release being served
* ``download`` -- ``FileResponse`` (``wsgi.file_wrapper`` when offered)
* ``boom``     -- an unhandled exception (500 + traceback on stderr)

and two async views, for ASGI (``mysite/asgi.py``; under WSGI Django runs them too):

* ``async_view``   -- an ``async def`` view using the async ORM
* ``async_stream`` -- ``StreamingHttpResponse`` over an async generator
"""

import asyncio
import contextlib
import hashlib
import json
import math
import os
import tempfile
import time

from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .forms import MessageForm, UploadForm
from .models import Message

LATEST_MESSAGES = 20

STREAM_DEFAULT_CHUNKS = 10
STREAM_MAX_CHUNKS = 10000
STREAM_MAX_DELAY = 1.0
STREAM_MAX_WIDTH = 65536

DOWNLOAD_DEFAULT_SIZE = 1024 * 1024  # 1 MiB
DOWNLOAD_MAX_SIZE = 64 * 1024 * 1024  # 64 MiB
DOWNLOAD_PATTERN = bytes(range(256))


@require_http_methods(["GET", "HEAD", "POST"])
def index(request):
    """Guestbook: list the latest messages and accept new ones (PRG)."""
    status = 200
    if request.method == "POST":
        form = MessageForm(request.POST)
        if form.is_valid():
            message = form.save()
            messages.success(request, f"Thanks, {message.name}!")
            return redirect("index")
        status = 400
    else:
        form = MessageForm()
    context = {
        "form": form,
        "latest": Message.objects.all()[:LATEST_MESSAGES],
        "total": Message.objects.count(),
    }
    return render(request, "demo/index.html", context, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def upload(request):
    """GET: a multipart form. POST: store the file and describe it as JSON."""
    if request.method != "POST":
        return render(request, "demo/upload.html", {"form": UploadForm()})

    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        error = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        return JsonResponse({"error": error or "invalid upload"}, status=400)

    uploaded = form.cleaned_data["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in uploaded.chunks():
        digest.update(chunk)
        size += len(chunk)
    uploaded.seek(0)
    # The storage sanitizes the name and picks a free one if it already exists.
    stored = default_storage.save(f"uploads/{uploaded.name}", uploaded)
    return JsonResponse(
        {
            "name": uploaded.name,
            "stored_as": stored,
            "url": default_storage.url(stored),
            "size": size,
            "sha256": digest.hexdigest(),
        }
    )


def _parse_number(raw, kind, default, low, high):
    """Parse a query parameter; clamp it to [low, high]. Raise ValueError."""
    if raw is None or raw == "":
        return default
    value = kind(raw)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(raw)
    return max(low, min(high, value))


@require_http_methods(["GET", "HEAD"])
def stream(request):
    """Stream ``chunks`` lines, optionally sleeping ``delay`` s between them; ``width`` pads
    each line to that many bytes (a large streamed response)."""
    try:
        chunks = _parse_number(
            request.GET.get("chunks"), int, STREAM_DEFAULT_CHUNKS, 0, STREAM_MAX_CHUNKS
        )
        delay = _parse_number(request.GET.get("delay"), float, 0.0, 0.0, STREAM_MAX_DELAY)
        width = _parse_number(request.GET.get("width"), int, 0, 0, STREAM_MAX_WIDTH)
    except ValueError:
        return HttpResponseBadRequest(
            "chunks and width must be integers and delay a number\n", content_type="text/plain"
        )

    def lines():
        for i in range(chunks):
            if delay and i:
                time.sleep(delay)
            line = f"line {i}"
            yield line.ljust(width - 1, ".") + "\n" if width > len(line) else line + "\n"

    return StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")


def _query_dict(querydict):
    """QueryDict -> plain dict; repeated keys become lists."""
    result = {}
    for key, values in querydict.lists():
        result[key] = values[0] if len(values) == 1 else values
    return result


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def api(request):
    """A tiny JSON API: GET describes the server, POST echoes a JSON body."""
    if request.method == "POST":
        try:
            received = json.loads(request.body or b"")
        except (ValueError, UnicodeDecodeError):
            return JsonResponse({"error": "invalid JSON"}, status=400)
        return JsonResponse({"method": "POST", "received": received})
    return JsonResponse(
        {
            "server": "dragoman-demo",
            "release": settings.RELEASE,
            "messages": Message.objects.count(),
            "method": request.method,
            "query": _query_dict(request.GET),
        }
    )


def _ensure_download_file(size):
    """Create (once) MEDIA_ROOT/downloads/dragoman-demo-<size>.bin."""
    directory = os.path.join(settings.MEDIA_ROOT, "downloads")
    path = os.path.join(directory, f"dragoman-demo-{size}.bin")
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    os.makedirs(directory, exist_ok=True)
    block = DOWNLOAD_PATTERN * 4096  # 1 MiB, a multiple of the pattern length
    # Write to a temporary file and rename it into place, so concurrent
    # workers never serve a partially written file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".dragoman-demo-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            remaining = size
            while remaining:
                piece = block[: min(remaining, len(block))]
                f.write(piece)
                remaining -= len(piece)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@require_http_methods(["GET", "HEAD"])
def download(request):
    """Serve a deterministic binary file as an attachment via FileResponse."""
    try:
        size = _parse_number(
            request.GET.get("size"), int, DOWNLOAD_DEFAULT_SIZE, 0, DOWNLOAD_MAX_SIZE
        )
    except ValueError:
        return HttpResponseBadRequest("size must be an integer\n", content_type="text/plain")
    path = _ensure_download_file(size)
    return FileResponse(
        open(path, "rb"),
        as_attachment=True,
        filename="dragoman-demo.bin",
        content_type="application/octet-stream",
    )


def boom(request):
    """Fail on purpose, so the server's 500 handling can be tested."""
    raise RuntimeError("boom: deliberate failure for testing")


@require_http_methods(["GET", "HEAD"])
async def async_view(request):
    """An async view: the async ORM, and whether it runs on an event loop of its own."""
    count = await Message.objects.acount()
    loop = asyncio.get_running_loop()
    return JsonResponse(
        {
            "messages": count,
            "loop": type(loop).__module__,
            # Django's WSGI requests carry the environ's wsgi.* keys; ASGI ones do not.
            "interface": "wsgi" if "wsgi.version" in request.META else "asgi",
        }
    )


@require_http_methods(["GET", "HEAD"])
async def async_stream(request):
    """Streams ``chunks`` lines from an async generator, ``delay`` s apart."""
    try:
        chunks = _parse_number(
            request.GET.get("chunks"), int, STREAM_DEFAULT_CHUNKS, 0, STREAM_MAX_CHUNKS
        )
        delay = _parse_number(request.GET.get("delay"), float, 0.0, 0.0, STREAM_MAX_DELAY)
    except ValueError:
        return HttpResponseBadRequest(
            "chunks must be an integer and delay a number\n", content_type="text/plain"
        )

    async def lines():
        for i in range(chunks):
            if delay and i:
                await asyncio.sleep(delay)
            yield f"line {i}\n"

    return StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
