from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("upload/", views.upload, name="upload"),
    path("stream/", views.stream, name="stream"),
    path("api/", views.api, name="api"),
    path("download/", views.download, name="download"),
    path("boom/", views.boom, name="boom"),
    path("async/", views.async_view, name="async"),
    path("async-stream/", views.async_stream, name="async-stream"),
]
