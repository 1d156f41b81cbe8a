"""Create (or reset) the demo superuser: admin / dragoman-demo."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"
PASSWORD = "dragoman-demo"
EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = (
        f"Create the demo superuser '{USERNAME}' with password '{PASSWORD}', "
        "or reset its password and flags if it already exists. Idempotent."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=USERNAME, defaults={"email": EMAIL})
        user.email = EMAIL
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(PASSWORD)
        user.save()
        if created:
            self.stdout.write(
                self.style.SUCCESS(f"Created superuser '{USERNAME}' (password '{PASSWORD}').")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Superuser '{USERNAME}' already existed; password reset to '{PASSWORD}'."
                )
            )
