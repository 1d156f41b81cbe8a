__version__: str

def run(argv: list[str]) -> int:
    """Run dragoman with a full argv (argv[0] is the program name); returns the exit code."""
