"""One module per convoy command; each exposes run(args) -> int."""
