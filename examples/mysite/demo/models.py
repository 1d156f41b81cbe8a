from django.db import models


class Message(models.Model):
    """A guestbook entry shown on the index page."""

    name = models.CharField(max_length=80)
    text = models.TextField(max_length=2000)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self):
        return f"{self.name}: {self.text[:40]}"
