"""The `emoclip` command line: one module per command, `main` the entry point."""
from .main import build_parser as build_parser
from .main import main as main
