"""The hello app behind WhiteNoise, serving STATIC_ROOT at /static/ (its usual Django setup)."""

import os

from hello import application as hello
from whitenoise import WhiteNoise

application = WhiteNoise(hello, root=os.environ["STATIC_ROOT"], prefix="static/")
